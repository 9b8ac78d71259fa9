//! Several users on one phone, on real files: each user's profile (store and key file) is
//! separate and unlocked by their PIN or a keystore key; wrong PINs are counted on disk and
//! wipe the profile at the limit; the data key is rotated without losing anything, even when a
//! rotation is cut short; cases are handed from one user to another; and the key file holds
//! neither the PIN nor the data key.

use crate::common;

use chrono::{DateTime, FixedOffset, TimeZone};
use common::date;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use uuid::Uuid;
use vigie_core::vault::RotationCrash;
use vigie_core::*;

/// The store, acting as `role` (as a hub would have told it at a sync; `common::act_as`).
fn as_role(store: &mut Store, role: Role) -> &mut Store {
    if store.user_profile().unwrap().map(|p| p.role) != Some(role) {
        common::act_as(store, role, &["CI-R1"]);
    }
    store
}

const USER_A: Uuid = Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0b01);
const USER_B: Uuid = Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0b02);
const USER_C: Uuid = Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0b03);
const DEVICE_A: Uuid = Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0d01);
const DEVICE_B: Uuid = Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0d02);
const PIN_A: &str = "482913";
const PIN_B: &str = "730516";
const KEYSTORE_A: [u8; 32] = [0xa7; 32];
const KEYSTORE_B: [u8; 32] = [0xb3; 32];

/// Argon2id at its cheapest: the tests exercise the logic, not the cost.
fn cheap_kdf() -> KdfParams {
    KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    }
}

/// No wait between wrong PINs (`pins_past_the_first_few_wait_longer_each_time` has them).
fn config(max_failed_pins: u32) -> VaultConfig {
    VaultConfig {
        kdf: cheap_kdf(),
        max_failed_pins,
        pin_delay_seconds: 0,
        ..VaultConfig::default()
    }
}

fn vault(dir: &Path) -> Vault {
    Vault::open_with(dir, config(10)).expect("open the vault")
}

fn area() -> Area {
    Area::new("CI", "CI-R1", "CI-R1-D1", "CI-R1-D1-C01")
}

fn at(day: u32) -> DateTime<FixedOffset> {
    FixedOffset::east_opt(0)
        .unwrap()
        .with_ymd_and_hms(2026, 3, day, 9, 0, 0)
        .unwrap()
}

/// The ids of what one user wrote.
#[derive(Debug, Default, Clone)]
struct Work {
    workplaces: Vec<Uuid>,
    visits: Vec<Uuid>,
    children: Vec<Uuid>,
}

/// Writes `n` workplaces, visits and child cases as `user`, then edits some: all of it stays
/// unsynced, in the store's outbox.
fn populate(store: &mut Store, user: Uuid, tag: &str, n: usize) -> Work {
    let mut work = Work::default();
    for i in 0..n {
        let mut w = Workplace::new(
            &format!("Plantation {tag} {i:03}"),
            "cocoa",
            Formality::Informal,
            area(),
        );
        w.owner_name = format!("Propriétaire {tag} {i:03}");
        let w = store.create(&w).expect("create a workplace");
        let mut v = Visit::new(
            VisitKind::CommunityMonitoring,
            &w,
            user,
            at(1 + (i % 20) as u32),
        );
        v.findings = format!("Deux enfants portaient des charges ({tag} {i}).");
        let v = store.create(&v).expect("create a visit");
        let mut c = ChildCase::new(
            &format!("{tag}-{i:04}"),
            &format!("Enfant {tag} {i:03}"),
            [Sex::Female, Sex::Male][i % 2],
            area(),
            date(2026, 3, 1),
            user,
        );
        c.estimated_age = Some(9 + (i % 8) as i32);
        c.hours_per_week = 20;
        c.identified_on_visit = Some(v.id);
        let mut c = store.create(&c).expect("create a child case");
        if i % 3 == 0 {
            c.notes = format!("Suivi prévu ({tag} {i}).");
            store.update(&c).expect("edit a child case");
        }
        work.workplaces.push(w.id);
        work.visits.push(v.id);
        work.children.push(c.id);
    }
    work
}

/// Everything a store holds of `work`, for comparing before and after.
#[derive(Debug, PartialEq)]
struct State {
    workplaces: Vec<Workplace>,
    visits: Vec<Visit>,
    children: Vec<ChildCase>,
    history_entries: usize,
    counts: [u64; 4],
    outbox: usize,
}

fn state(store: &Store, work: &Work) -> State {
    let all = work
        .workplaces
        .iter()
        .chain(&work.visits)
        .chain(&work.children);
    State {
        workplaces: work
            .workplaces
            .iter()
            .map(|id| store.get(*id).unwrap())
            .collect(),
        visits: work
            .visits
            .iter()
            .map(|id| store.get(*id).unwrap())
            .collect(),
        children: work
            .children
            .iter()
            .map(|id| store.get(*id).unwrap())
            .collect(),
        history_entries: all.map(|id| store.history(*id).unwrap().len()).sum(),
        counts: [
            RecordKind::Workplace,
            RecordKind::Visit,
            RecordKind::ChildCase,
            RecordKind::User,
        ]
        .map(|k| store.count(k).unwrap()),
        outbox: store.hub_outbox_len().unwrap(),
    }
}

/// Compares two states, naming only the parts that differ (the whole would be pages long).
#[track_caller]
fn assert_same(actual: &State, expected: &State, when: &str) {
    let differs = [
        ("workplaces", actual.workplaces != expected.workplaces),
        ("visits", actual.visits != expected.visits),
        ("children", actual.children != expected.children),
        (
            "history",
            actual.history_entries != expected.history_entries,
        ),
        ("counts", actual.counts != expected.counts),
        ("outbox", actual.outbox != expected.outbox),
    ];
    let differs: Vec<&str> = differs.iter().filter(|d| d.1).map(|d| d.0).collect();
    assert!(differs.is_empty(), "{when}: {differs:?} differ");
}

fn key_file(vault: &Vault, user: Uuid) -> PathBuf {
    vault.profile_dir(user).join("key.json")
}

fn store_file(vault: &Vault, user: Uuid) -> PathBuf {
    vault.profile_dir(user).join("store.db")
}

fn key_json(vault: &Vault, user: Uuid) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(key_file(vault, user)).unwrap()).unwrap()
}

fn wrong_pin<T: std::fmt::Debug>(r: Result<T>) -> u32 {
    match r {
        Err(Error::WrongPin { attempts_left }) => attempts_left,
        other => panic!("expected WrongPin, got {other:?}"),
    }
}

fn files_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn two_users_on_one_phone_keep_their_own_unsynced_work_across_switches() {
    let dir = tempfile::tempdir().unwrap();
    let vault = vault(dir.path());
    assert!(vault.users().unwrap().is_empty());

    let mut a = vault.create_user(USER_A, Some(DEVICE_A), PIN_A).unwrap();
    assert_eq!((a.user_id(), a.device_id()), (USER_A, DEVICE_A));
    let work_a = populate(&mut a, USER_A, "A", 30);
    let mut state_a = state(&a, &work_a);
    assert_eq!(state_a.outbox, 90, "every record of A waits for the hub");
    a.close().unwrap();

    let mut b = vault.create_user(USER_B, Some(DEVICE_B), PIN_B).unwrap();
    assert_eq!(b.count(RecordKind::ChildCase).unwrap(), 0, "B starts empty");
    let work_b = populate(&mut b, USER_B, "B", 20);
    let state_b = state(&b, &work_b);
    b.close().unwrap();
    assert_eq!(vault.users().unwrap(), vec![USER_A, USER_B]);

    // Back and forth: each finds exactly their own work, outbox included.
    for round in 0..3 {
        let mut a = vault.unlock_with_pin(USER_A, PIN_A).unwrap();
        assert_same(
            &state(&a, &work_a),
            &state_a,
            &format!("round {round}: A's work"),
        );
        assert!(matches!(
            a.get::<ChildCase>(work_b.children[0]),
            Err(Error::NotFound { .. })
        ));
        // A keeps working between switches: the outbox grows, nothing leaves it.
        let mut c: ChildCase = a.get(work_a.children[1]).unwrap();
        c.notes.push_str(&format!(" Tour {round}."));
        a.update(&c).unwrap();
        state_a = state(&a, &work_a);
        assert_eq!(state_a.outbox, 90);
        a.close().unwrap();

        let b = vault.unlock_with_pin(USER_B, PIN_B).unwrap();
        assert_same(
            &state(&b, &work_b),
            &state_b,
            &format!("round {round}: B's work"),
        );
        assert!(matches!(
            b.get::<Workplace>(work_a.workplaces[0]),
            Err(Error::NotFound { .. })
        ));
        b.close().unwrap();
    }
    let a = vault.unlock_with_pin(USER_A, PIN_A).unwrap();
    let c: ChildCase = a.get(work_a.children[1]).unwrap();
    assert!(c.notes.ends_with("Tour 0. Tour 1. Tour 2."));
    a.close().unwrap();

    // Separate files, each under its own key.
    let (db_a, db_b) = (store_file(&vault, USER_A), store_file(&vault, USER_B));
    assert_ne!(db_a, db_b);
    assert!(db_a.is_file() && db_b.is_file());
    assert_ne!(vault.profile_dir(USER_A), vault.profile_dir(USER_B));
    for db in [&db_a, &db_b] {
        assert!(matches!(
            Store::open(StoreConfig::new(db, Encryption::Unencrypted, USER_A)),
            Err(Error::WrongKeyOrNotAStore)
        ));
    }

    // One user's PIN or keystore key does not open the other's profile.
    assert_eq!(wrong_pin(vault.unlock_with_pin(USER_B, PIN_A)), 9);
    assert_eq!(wrong_pin(vault.unlock_with_pin(USER_A, PIN_B)), 9);
    vault
        .add_keystore_unlock(USER_A, PIN_A, &KEYSTORE_A)
        .unwrap();
    vault
        .add_keystore_unlock(USER_B, PIN_B, &KEYSTORE_B)
        .unwrap();
    assert!(matches!(
        vault.unlock_with_keystore(USER_B, &KEYSTORE_A),
        Err(Error::WrongKeyOrNotAStore)
    ));
    assert!(matches!(
        vault.unlock_with_keystore(USER_A, &KEYSTORE_B),
        Err(Error::WrongKeyOrNotAStore)
    ));
    // Swapping the two key files is refused too: each names its user.
    let (key_a, key_b) = (key_file(&vault, USER_A), key_file(&vault, USER_B));
    let bytes_a = std::fs::read(&key_a).unwrap();
    std::fs::copy(&key_b, &key_a).unwrap();
    assert!(matches!(
        vault.unlock_with_pin(USER_A, PIN_B),
        Err(Error::DamagedProfile { user: USER_A, .. })
    ));
    std::fs::write(&key_a, bytes_a).unwrap();
    // A store file cut to nothing, its journal gone with it, is not opened as a new store.
    let store_a = store_file(&vault, USER_A);
    let whole = std::fs::read(&store_a).unwrap();
    std::fs::write(&store_a, b"").unwrap();
    assert!(matches!(
        vault.unlock_with_keystore(USER_A, &KEYSTORE_A),
        Err(Error::DamagedProfile { user: USER_A, .. })
    ));
    assert_eq!(
        std::fs::metadata(&store_a).unwrap().len(),
        0,
        "left as found"
    );
    std::fs::write(&store_a, whole).unwrap();

    let a = vault.unlock_with_keystore(USER_A, &KEYSTORE_A).unwrap();
    assert_eq!(a.count(RecordKind::Workplace).unwrap(), 30);
    a.close().unwrap();
    let b = vault.unlock_with_keystore(USER_B, &KEYSTORE_B).unwrap();
    assert_same(&state(&b, &work_b), &state_b, "B by keystore");
    b.close().unwrap();
}

fn pin_locked<T: std::fmt::Debug>(r: Result<T>) -> u64 {
    match r {
        Err(Error::PinLocked { retry_in_seconds }) => retry_in_seconds,
        other => panic!("expected PinLocked, got {other:?}"),
    }
}

/// Someone handed the phone cannot wipe its user's unsynced work in a minute: past the first
/// wrong PINs each attempt waits, the wait doubling with each wrong one; an attempt made
/// sooner is refused and not counted, across restarts; the right PIN, once its turn comes,
/// unlocks and ends the waits; a clock set back does not lock the profile until it catches up.
#[test]
fn pins_past_the_first_few_wait_longer_each_time() {
    let dir = tempfile::tempdir().unwrap();
    let delayed = || VaultConfig {
        pin_delay_after: 2,
        pin_delay_seconds: 1,
        ..config(6)
    };
    let vault = Vault::open_with(dir.path(), delayed()).unwrap();
    let mut a = vault.create_user(USER_A, None, PIN_A).unwrap();
    let work = populate(&mut a, USER_A, "A", 2);
    let before = state(&a, &work);
    a.close().unwrap();

    assert_eq!(wrong_pin(vault.unlock_with_pin(USER_A, "111222")), 5);
    assert_eq!(wrong_pin(vault.unlock_with_pin(USER_A, "111223")), 4);
    assert_eq!(vault.pin_retry_in_seconds(USER_A).unwrap(), 1);
    // Not even the right PIN is tried before its turn, and the refusal counts nothing.
    assert_eq!(pin_locked(vault.unlock_with_pin(USER_A, PIN_A)), 1);
    assert_eq!(pin_locked(vault.change_pin(USER_A, PIN_A, "915372")), 1);
    assert_eq!(vault.pin_attempts_left(USER_A).unwrap(), 4);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(vault.pin_retry_in_seconds(USER_A).unwrap(), 0);
    assert_eq!(wrong_pin(vault.unlock_with_pin(USER_A, "111224")), 3);
    // Twice as long now, and a restart of the app does not spare it.
    drop(vault);
    let vault = Vault::open_with(dir.path(), delayed()).unwrap();
    assert_eq!(pin_locked(vault.unlock_with_pin(USER_A, "111225")), 2);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let a = vault.unlock_with_pin(USER_A, PIN_A).unwrap();
    assert_same(&state(&a, &work), &before, "A after the waits");
    a.close().unwrap();
    assert_eq!(vault.pin_attempts_left(USER_A).unwrap(), 6);
    assert_eq!(vault.pin_retry_in_seconds(USER_A).unwrap(), 0);

    // The phone's clock set back a year behind the last wrong PIN: the wait counts from now.
    assert_eq!(wrong_pin(vault.unlock_with_pin(USER_A, "111222")), 5);
    assert_eq!(wrong_pin(vault.unlock_with_pin(USER_A, "111223")), 4);
    let path = key_file(&vault, USER_A);
    let mut file = key_json(&vault, USER_A);
    let a_year = 365 * 24 * 3600 * 1000_i64;
    let last = file["last_failed_pin_ms"]
        .as_i64()
        .expect("the last wrong PIN's time");
    file["last_failed_pin_ms"] = (last + a_year).into();
    std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
    assert_eq!(pin_locked(vault.unlock_with_pin(USER_A, PIN_A)), 1);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    vault
        .unlock_with_pin(USER_A, PIN_A)
        .unwrap()
        .close()
        .unwrap();
}

#[test]
fn wrong_pins_are_counted_across_restarts_and_wipe_the_profile_at_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::open_with(dir.path(), config(5)).unwrap();
    let mut a = vault.create_user(USER_A, None, PIN_A).unwrap();
    populate(&mut a, USER_A, "A", 3);
    a.close().unwrap();
    let mut b = vault.create_user(USER_B, None, PIN_B).unwrap();
    let work_b = populate(&mut b, USER_B, "B", 3);
    let state_b = state(&b, &work_b);
    b.close().unwrap();

    assert_eq!(wrong_pin(vault.unlock_with_pin(USER_A, "111222")), 4);
    assert_eq!(wrong_pin(vault.unlock_with_pin(USER_A, "482914")), 3);
    // One vault per directory: a second one would not know of the first's open stores.
    assert!(matches!(
        Vault::open_with(dir.path(), config(5)),
        Err(Error::NotAllowed { .. })
    ));
    // Killing the app (here: a new vault on the same directory) does not reset the count.
    drop(vault);
    let vault = Vault::open_with(dir.path(), config(5)).unwrap();
    assert_eq!(vault.pin_attempts_left(USER_A).unwrap(), 3);
    assert_eq!(wrong_pin(vault.unlock_with_pin(USER_A, "000111")), 2);
    // Nor does a keystore attempt on a profile without keystore unlock.
    assert!(vault.unlock_with_keystore(USER_A, &KEYSTORE_A).is_err());
    assert_eq!(vault.pin_attempts_left(USER_A).unwrap(), 2);

    // The right PIN resets it.
    vault
        .unlock_with_pin(USER_A, PIN_A)
        .unwrap()
        .close()
        .unwrap();
    assert_eq!(vault.pin_attempts_left(USER_A).unwrap(), 5);

    for left in (1..=4).rev() {
        assert_eq!(wrong_pin(vault.unlock_with_pin(USER_A, "246810")), left);
    }
    match vault.unlock_with_pin(USER_A, "246810") {
        Err(Error::ProfileWiped) => {}
        other => panic!("the fifth wrong PIN gave {other:?}"),
    }
    assert!(!vault.profile_dir(USER_A).exists(), "A's directory is gone");
    assert!(!key_file(&vault, USER_A).exists() && !store_file(&vault, USER_A).exists());
    assert_eq!(vault.users().unwrap(), vec![USER_B]);
    assert!(matches!(
        vault.unlock_with_pin(USER_A, PIN_A),
        Err(Error::NoProfile { user: USER_A })
    ));
    // B's profile is untouched.
    let b = vault.unlock_with_pin(USER_B, PIN_B).unwrap();
    assert_same(&state(&b, &work_b), &state_b, "B after A was wiped");
    b.close().unwrap();
    // A can be set up again, from nothing.
    let a = vault.create_user(USER_A, None, PIN_A).unwrap();
    assert_eq!(a.count(RecordKind::Workplace).unwrap(), 0);
    a.close().unwrap();
}

#[test]
fn short_or_trivial_pins_are_refused_naming_the_pin() {
    let dir = tempfile::tempdir().unwrap();
    let vault = vault(dir.path());
    for pin in ["", "4829", "48291", "000000", "123456", "876543"] {
        match vault.create_user(USER_A, None, pin) {
            Err(Error::Validation(e)) => assert_eq!(e.field, "pin"),
            other => panic!("PIN of {} characters gave {other:?}", pin.len()),
        }
    }
    assert!(vault.users().unwrap().is_empty());
    assert!(!vault.profile_dir(USER_A).exists());

    vault
        .create_user(USER_A, None, PIN_A)
        .unwrap()
        .close()
        .unwrap();
    match vault.change_pin(USER_A, PIN_A, "12345") {
        Err(Error::Validation(e)) => assert_eq!(e.field, "pin"),
        other => panic!("a short new PIN gave {other:?}"),
    }
    vault
        .unlock_with_pin(USER_A, PIN_A)
        .unwrap()
        .close()
        .unwrap();
    // Errors carry no PIN.
    let text = vault
        .unlock_with_pin(USER_A, "975318")
        .unwrap_err()
        .to_string();
    assert!(!text.contains("975318") && !text.contains(PIN_A), "{text}");
    assert!(matches!(
        vault.create_user(USER_A, None, PIN_B),
        Err(Error::ProfileExists { user: USER_A })
    ));
    // An empty directory is refused on its field, not taken as the working directory.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let through = file.join("sub");
    let (file, through) = (file.to_str().unwrap(), through.to_str().unwrap());
    let dangling = dir.path().join("dangling");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
    let slash = format!("{file}/");
    for wrong in [
        "",
        "  ",
        "a\0b",
        file,
        through,
        "/dev/null",
        &slash,
        dangling.to_str().unwrap(),
        // A place the app may not create a directory in.
        "/proc/vigie-vault",
    ] {
        match Vault::open_with(wrong, config(5)) {
            Err(Error::Validation(e)) => assert_eq!(e.field, "dir"),
            other => panic!("a vault in {wrong:?} gave {other:?}"),
        }
    }
    assert!(!std::path::Path::new("vault.lock").exists());
    // A minimum no PIN accepted could meet is refused at the opening, not at each profile.
    for min_pin_chars in [3, 129, usize::MAX] {
        let config = VaultConfig {
            min_pin_chars,
            ..config(5)
        };
        match Vault::open_with(dir.path().join("strict"), config) {
            Err(Error::Validation(e)) => assert_eq!(e.field, "min_pin_chars"),
            other => panic!("a minimum of {min_pin_chars} gave {other:?}"),
        }
    }
    // Each cost out of bounds is named on its own field.
    let cheap = cheap_kdf();
    for (kdf, field) in [
        (
            KdfParams {
                memory_kib: 0,
                ..cheap
            },
            "kdf_memory_kib",
        ),
        (
            KdfParams {
                memory_kib: 4 << 20,
                ..cheap
            },
            "kdf_memory_kib",
        ),
        (
            KdfParams {
                iterations: 0,
                ..cheap
            },
            "kdf_iterations",
        ),
        (
            KdfParams {
                iterations: 1000,
                ..cheap
            },
            "kdf_iterations",
        ),
        (
            KdfParams {
                parallelism: 0,
                ..cheap
            },
            "kdf_parallelism",
        ),
        (
            KdfParams {
                parallelism: 64,
                ..cheap
            },
            "kdf_parallelism",
        ),
    ] {
        let config = VaultConfig { kdf, ..config(5) };
        match Vault::open_with(dir.path().join("costly"), config) {
            Err(Error::Validation(e)) => assert_eq!(e.field, field, "{kdf:?}"),
            other => panic!("{kdf:?} gave {other:?}"),
        }
    }
}

#[test]
fn keystore_unlock_and_pin_changes_keep_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let vault = vault(dir.path());
    let mut a = vault.create_user(USER_A, Some(DEVICE_A), PIN_A).unwrap();
    let work = populate(&mut a, USER_A, "A", 10);
    let before = state(&a, &work);
    a.close().unwrap();

    assert!(!vault.has_keystore_unlock(USER_A).unwrap());
    assert!(matches!(
        vault.unlock_with_keystore(USER_A, &KEYSTORE_A),
        Err(Error::NotAllowed { .. })
    ));
    assert_eq!(
        wrong_pin(vault.add_keystore_unlock(USER_A, PIN_B, &KEYSTORE_A)),
        9,
        "adding a keystore key needs the PIN"
    );
    vault
        .add_keystore_unlock(USER_A, PIN_A, &KEYSTORE_A)
        .unwrap();
    assert!(vault.has_keystore_unlock(USER_A).unwrap());
    let a = vault.unlock_with_keystore(USER_A, &KEYSTORE_A).unwrap();
    assert_same(&state(&a, &work), &before, "by keystore");
    assert_eq!(a.device_id(), DEVICE_A);
    a.close().unwrap();

    // A wrong PIN, then biometrics: the user is back, the count starts again.
    assert_eq!(wrong_pin(vault.unlock_with_pin(USER_A, "555123")), 9);
    vault
        .unlock_with_keystore(USER_A, &KEYSTORE_A)
        .unwrap()
        .close()
        .unwrap();
    assert_eq!(vault.pin_attempts_left(USER_A).unwrap(), 10);

    const NEW_PIN: &str = "kouadio-2026";
    assert_eq!(wrong_pin(vault.change_pin(USER_A, "555123", NEW_PIN)), 9);
    vault.change_pin(USER_A, PIN_A, NEW_PIN).unwrap();
    assert_eq!(wrong_pin(vault.unlock_with_pin(USER_A, PIN_A)), 9);
    let a = vault.unlock_with_pin(USER_A, NEW_PIN).unwrap();
    assert_same(&state(&a, &work), &before, "with the new PIN");
    a.close().unwrap();
    // The keystore wrap survives a PIN change: it wraps the profile key, not the PIN's.
    let a = vault.unlock_with_keystore(USER_A, &KEYSTORE_A).unwrap();
    assert_same(
        &state(&a, &work),
        &before,
        "by keystore after the PIN change",
    );
    a.close().unwrap();

    vault.remove_keystore_unlock(USER_A).unwrap();
    assert!(matches!(
        vault.unlock_with_keystore(USER_A, &KEYSTORE_A),
        Err(Error::NotAllowed { .. })
    ));
    vault
        .unlock_with_pin(USER_A, NEW_PIN)
        .unwrap()
        .close()
        .unwrap();
}

#[test]
fn kdf_parameters_are_kept_with_the_salt_and_raised_at_the_next_unlock() {
    let dir = tempfile::tempdir().unwrap();
    let vault = vault(dir.path());
    vault
        .create_user(USER_A, None, PIN_A)
        .unwrap()
        .close()
        .unwrap();
    let before = key_json(&vault, USER_A);
    assert_eq!(before["pin"]["kdf"]["memory_kib"], 64);
    assert_eq!(before["pin"]["kdf"]["iterations"], 1);
    drop(vault);

    let stronger = KdfParams {
        memory_kib: 256,
        iterations: 2,
        parallelism: 1,
    };
    let vault = Vault::open_with(
        dir.path(),
        VaultConfig {
            kdf: stronger,
            ..VaultConfig::default()
        },
    )
    .unwrap();
    vault
        .unlock_with_pin(USER_A, PIN_A)
        .unwrap()
        .close()
        .unwrap();
    let after = key_json(&vault, USER_A);
    assert_eq!(after["pin"]["kdf"]["memory_kib"], 256);
    assert_eq!(after["pin"]["kdf"]["iterations"], 2);
    assert_ne!(after["pin"]["salt"], before["pin"]["salt"], "a new salt");
    assert_eq!(
        after["data_key"], before["data_key"],
        "the data key is untouched"
    );
    vault
        .unlock_with_pin(USER_A, PIN_A)
        .unwrap()
        .close()
        .unwrap();
}

#[test]
fn rekey_keeps_every_record_and_the_old_key_stops_working() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("phone.db");
    let (old_key, new_key) = ([0x11; 32], [0x22; 32]);
    let mut store =
        Store::open(StoreConfig::new(&db, Encryption::Key(old_key), USER_A).device(DEVICE_A))
            .unwrap();
    let work = populate(&mut store, USER_A, "A", 150);
    let before = state(&store, &work);
    assert_eq!(before.outbox, 450);
    let actor = store.actor().clone();

    // Re-keyed open, with the latest writes still in the WAL.
    store.rekey(Encryption::Key(new_key)).unwrap();
    assert_same(&state(&store, &work), &before, "re-keyed, still open");
    assert!(store.integrity_check().unwrap());
    assert_eq!(
        store.actor(),
        &actor,
        "the store keeps its device and actor"
    );
    let hits = store.search_names("enfant a 042", 5).unwrap();
    assert_eq!(hits.len(), 1, "the full-text index came along");
    // And it goes on working.
    let mut c: ChildCase = store.get(work.children[0]).unwrap();
    c.notes = "Après le changement de clé.".into();
    store.update(&c).unwrap();
    store.close().unwrap();
    assert_eq!(
        files_in(dir.path()),
        BTreeSet::from(["phone.db".to_string()]),
        "no temporary file is left"
    );

    match Store::open(StoreConfig::new(&db, Encryption::Key(old_key), USER_A)) {
        Err(Error::WrongKeyOrNotAStore) => {}
        other => panic!("the old key gave {other:?}"),
    }
    let store = Store::open(StoreConfig::new(&db, Encryption::Key(new_key), USER_A)).unwrap();
    let mut expected = before;
    expected.children[0] = store.get(work.children[0]).unwrap();
    expected.history_entries += 1;
    assert_same(
        &state(&store, &work),
        &expected,
        "reopened with the new key",
    );
    assert_eq!(expected.children[0].notes, "Après le changement de clé.");
    assert_eq!(
        store.schema_version().unwrap(),
        vigie_core::store::SCHEMA_VERSION
    );
    store.close().unwrap();
}

#[test]
fn vault_rotation_keeps_every_record_and_retires_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    let vault = vault(dir.path());
    let mut a = vault.create_user(USER_A, Some(DEVICE_A), PIN_A).unwrap();
    vault
        .add_keystore_unlock(USER_A, PIN_A, &KEYSTORE_A)
        .unwrap();
    let work = populate(&mut a, USER_A, "A", 60);
    let before = state(&a, &work);
    let old_key_file = std::fs::read(key_file(&vault, USER_A)).unwrap();

    assert_eq!(
        wrong_pin(vault.rotate_key(&mut a, Credential::Pin(PIN_B))),
        9
    );
    vault.rotate_key(&mut a, Credential::Pin(PIN_A)).unwrap();
    assert_same(&state(&a, &work), &before, "the open store carries on");
    // Biometrics suffice too, and rotating twice is fine.
    vault
        .rotate_key(&mut a, Credential::Keystore(&KEYSTORE_A))
        .unwrap();
    a.close().unwrap();
    let json = key_json(&vault, USER_A);
    assert!(json["pending_data_key"].is_null());

    let a = vault.unlock_with_pin(USER_A, PIN_A).unwrap();
    assert_same(&state(&a, &work), &before, "reopened after rotations");
    a.close().unwrap();
    let a = vault.unlock_with_keystore(USER_A, &KEYSTORE_A).unwrap();
    a.close().unwrap();

    // The key file from before the rotation holds the old data key: it no longer opens the
    // store.
    std::fs::write(key_file(&vault, USER_A), &old_key_file).unwrap();
    match vault.unlock_with_pin(USER_A, PIN_A) {
        Err(Error::Io(e)) => assert!(e.to_string().contains("key file"), "{e}"),
        other => panic!("an old key file gave {other:?}"),
    }
}

#[test]
fn a_rotation_cut_short_at_any_point_leaves_a_store_that_opens_with_everything() {
    for crash in [
        RotationCrash::AfterPendingKey,
        RotationCrash::AfterExport,
        RotationCrash::AfterRename,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let vault = vault(dir.path());
        let mut a = vault.create_user(USER_A, Some(DEVICE_A), PIN_A).unwrap();
        let work = populate(&mut a, USER_A, "A", 40);
        let before = state(&a, &work);
        vault
            .rotate_key_interrupted(a, Credential::Pin(PIN_A), crash)
            .unwrap();
        drop(vault);

        let vault = self::vault(dir.path());
        assert!(
            !key_json(&vault, USER_A)["pending_data_key"].is_null(),
            "{crash:?}: the new key is pending"
        );
        let rekey_file = vault.profile_dir(USER_A).join("store.db.rekey");
        assert_eq!(
            rekey_file.exists(),
            crash == RotationCrash::AfterExport,
            "{crash:?}: the new file waits beside the store only between export and rename"
        );
        let a = vault.unlock_with_pin(USER_A, PIN_A).unwrap();
        assert_same(
            &state(&a, &work),
            &before,
            &format!("{crash:?}: nothing lost"),
        );
        assert!(a.integrity_check().unwrap());
        assert!(
            key_json(&vault, USER_A)["pending_data_key"].is_null(),
            "{crash:?}: the key file is settled"
        );
        assert!(!rekey_file.exists(), "{crash:?}: leftovers removed");
        a.close().unwrap();

        // Settled for good: it opens again, and a full rotation works from there.
        let mut a = vault.unlock_with_pin(USER_A, PIN_A).unwrap();
        vault.rotate_key(&mut a, Credential::Pin(PIN_A)).unwrap();
        a.close().unwrap();
        let a = vault.unlock_with_pin(USER_A, PIN_A).unwrap();
        assert_same(
            &state(&a, &work),
            &before,
            &format!("{crash:?}: after a new rotation"),
        );
        a.close().unwrap();
    }
}

#[test]
fn open_cases_are_handed_over_to_another_user_and_closed_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let vault = vault(dir.path());
    vault
        .create_user(USER_B, Some(DEVICE_B), PIN_B)
        .unwrap()
        .close()
        .unwrap();
    let mut a = vault.create_user(USER_A, Some(DEVICE_A), PIN_A).unwrap();
    let work = populate(&mut a, USER_A, "A", 6);
    let [open_1, open_2, open_3, closed] = [0, 1, 2, 3].map(|i| work.children[i]);
    // A follow-up is due on the first case: it is on A's due list.
    let follow_up = FollowUp {
        date: date(2026, 3, 10),
        situation: FollowUpSituation::AtRisk,
        notes: String::new(),
        next_due: Some(date(2026, 4, 10)),
    };
    as_role(&mut a, Role::CommunityMonitor)
        .add_follow_up(open_1, follow_up)
        .unwrap();
    let referral = Referral {
        service: ServiceKind::Education,
        provider: "École primaire".into(),
        date: date(2026, 3, 3),
        outcome: String::new(),
    };
    as_role(&mut a, Role::Supervisor)
        .refer_case(closed, referral)
        .unwrap();
    // Verified, seen in school at a follow-up after it, closed.
    for to in [CaseStatus::ReceivingServices, CaseStatus::Withdrawn] {
        as_role(&mut a, Role::Supervisor)
            .transition_case_on(closed, to, date(2026, 3, 12))
            .unwrap();
    }
    let seen_in_school = FollowUp {
        date: date(2026, 6, 12),
        situation: FollowUpSituation::InSchool,
        notes: String::new(),
        next_due: None,
    };
    as_role(&mut a, Role::Supervisor)
        .add_follow_up(closed, seen_in_school)
        .unwrap();
    as_role(&mut a, Role::Supervisor)
        .transition_case(closed, CaseStatus::Closed)
        .unwrap();
    let due = |store: &Store, who: Uuid| -> Vec<Uuid> {
        store
            .follow_ups_due(None, Some(who), date(2027, 1, 1), Page::first(100))
            .unwrap()
            .into_iter()
            .filter(|d| d.kind == RecordKind::ChildCase)
            .map(|d| d.id)
            .collect()
    };
    assert!(due(&a, USER_A).contains(&open_1));
    let outbox_before = a.hub_outbox_len().unwrap();

    // A closed case among them: nothing is handed over.
    match a.hand_over(&[open_3, closed], USER_B) {
        Err(Error::CaseNotOpen { id, status }) => {
            assert_eq!((id, status), (closed, CaseStatus::Closed));
        }
        other => panic!("handing over a closed case gave {other:?}"),
    }
    assert_eq!(a.get::<ChildCase>(open_3).unwrap().identified_by, USER_A);
    assert!(matches!(
        a.hand_over(&[open_1], USER_A),
        Err(Error::NotAllowed { .. })
    ));

    let hand_over = a.hand_over(&[open_1, open_2, open_1], USER_B).unwrap();
    assert_eq!((hand_over.from, hand_over.to), (USER_A, USER_B));
    assert_eq!(
        hand_over.cases.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![open_1, open_2]
    );
    assert!(!format!("{hand_over:?}").contains("Enfant"));
    // On A's side: an ordinary edit by A, waiting in A's outbox with everything else of A's.
    for id in [open_1, open_2] {
        let case: ChildCase = a.get(id).unwrap();
        assert_eq!(case.identified_by, USER_B);
        let last = a.history(id).unwrap().pop().unwrap();
        let author = last.author.unwrap();
        assert_eq!((author.user, author.device), (USER_A, DEVICE_A));
        assert_eq!(last.fields, vec!["identified_by".to_string()]);
    }
    assert_eq!(
        a.hub_outbox_len().unwrap(),
        outbox_before,
        "nothing left the outbox"
    );
    assert_eq!(
        a.count(RecordKind::ChildCase).unwrap(),
        6,
        "A keeps its copies"
    );
    assert!(!due(&a, USER_A).contains(&open_1));
    // A store that is not B's refuses B's hand-over.
    assert!(matches!(
        a.receive_hand_over(&hand_over),
        Err(Error::NotAllowed { .. })
    ));
    a.close().unwrap();

    // B, offline, has the cases at once and works on them.
    let mut b = vault.unlock_with_pin(USER_B, PIN_B).unwrap();
    assert_eq!(
        b.receive_hand_over(&hand_over).unwrap(),
        vec![open_1, open_2]
    );
    assert_eq!(due(&b, USER_B), vec![open_1]);
    let mut case: ChildCase = b.get(open_2).unwrap();
    assert_eq!(case.identified_by, USER_B);
    case.notes = "Repris par B.".into();
    b.update(&case).unwrap();
    assert_eq!(b.hub_outbox_len().unwrap(), 2);
    // Receiving the same hand-over again changes nothing.
    b.receive_hand_over(&hand_over).unwrap();
    assert_eq!(b.get::<ChildCase>(open_2).unwrap().notes, "Repris par B.");
    b.close().unwrap();

    // A's work is all still there.
    let a = vault.unlock_with_pin(USER_A, PIN_A).unwrap();
    assert_eq!(a.hub_outbox_len().unwrap(), outbox_before);
    assert_eq!(a.get::<ChildCase>(open_3).unwrap().identified_by, USER_A);
    a.close().unwrap();
}

#[test]
fn wiping_removes_the_key_and_the_store_of_one_user_or_of_all() {
    let dir = tempfile::tempdir().unwrap();
    let vault = vault(dir.path());
    for (user, pin) in [(USER_A, PIN_A), (USER_B, PIN_B), (USER_C, "915204")] {
        let mut store = vault.create_user(user, None, pin).unwrap();
        populate(&mut store, user, "X", 2);
        store.close().unwrap();
    }
    // Told to wipe while A works: the open store goes with its key.
    let a = vault.unlock_with_pin(USER_A, PIN_A).unwrap();
    vault.wipe_store(a).unwrap();
    assert!(!vault.profile_dir(USER_A).exists());
    assert_eq!(vault.users().unwrap(), vec![USER_B, USER_C]);

    vault.wipe_user(USER_B).unwrap();
    vault.wipe_user(USER_B).unwrap();
    assert_eq!(vault.users().unwrap(), vec![USER_C]);
    let c = vault.unlock_with_pin(USER_C, "915204").unwrap();
    assert_eq!(c.count(RecordKind::Workplace).unwrap(), 2);
    c.close().unwrap();

    // A creation cut short left a directory with no key file: not a profile, and wiped too.
    std::fs::create_dir_all(vault.profile_dir(USER_A)).unwrap();
    std::fs::write(vault.profile_dir(USER_A).join("store.db"), b"noise").unwrap();
    assert_eq!(vault.users().unwrap(), vec![USER_C]);
    vault.wipe_all().unwrap();
    assert!(vault.users().unwrap().is_empty());
    assert!(files_in(&vault.users_dir()).is_empty());
}

/// A profile's store damaged (a bit flipped in its first page) unlocked with the right PIN:
/// said damaged, not a wrong key, and no attempt counted against the PIN.
#[test]
fn a_damaged_profile_store_unlocked_with_the_right_pin_is_said_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let vault = vault(dir.path());
    let store = vault.create_user(USER_A, None, PIN_A).unwrap();
    store.close().unwrap();
    let file = store_file(&vault, USER_A);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[100] ^= 0x10;
    std::fs::write(&file, bytes).unwrap();
    for _ in 0..3 {
        match vault.unlock_with_pin(USER_A, PIN_A) {
            Err(Error::Io(e)) => assert!(e.to_string().contains("damaged"), "{e}"),
            other => panic!("a damaged store gave {other:?}"),
        }
    }
    // A wrong PIN is still one.
    assert!(wrong_pin(vault.unlock_with_pin(USER_A, "915203")) > 0);
}

/// Every 32-byte sequence of `bytes`, raw, and every one in each hex-decoded run of hex digits.
fn candidate_keys(bytes: &[u8]) -> Vec<[u8; 32]> {
    let mut candidates: Vec<[u8; 32]> = bytes.windows(32).map(|w| w.try_into().unwrap()).collect();
    let text = String::from_utf8_lossy(bytes);
    for run in text
        .split(|c: char| !c.is_ascii_hexdigit())
        .filter(|r| r.len() >= 64)
    {
        for start in 0..2 {
            let decoded: Vec<u8> = (start..run.len() - 1)
                .step_by(2)
                .map(|i| u8::from_str_radix(&run[i..i + 2], 16).unwrap())
                .collect();
            candidates.extend(
                decoded
                    .windows(32)
                    .map(|w| <[u8; 32]>::try_from(w).unwrap()),
            );
        }
    }
    candidates
}

fn keys_that_open(db: &Path, candidates: &[[u8; 32]]) -> usize {
    candidates
        .iter()
        .filter(
            |key| match Store::open(StoreConfig::new(db, Encryption::Key(**key), USER_A)) {
                Ok(store) => {
                    store.close().unwrap();
                    true
                }
                Err(Error::WrongKeyOrNotAStore) => false,
                Err(e) => panic!("opening with a candidate key gave {e:?}"),
            },
        )
        .count()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn the_key_file_holds_neither_the_pin_nor_any_key_that_opens_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let vault = vault(dir.path());
    let mut a = vault.create_user(USER_A, None, PIN_A).unwrap();
    populate(&mut a, USER_A, "A", 2);
    vault
        .add_keystore_unlock(USER_A, PIN_A, &KEYSTORE_A)
        .unwrap();
    vault.rotate_key(&mut a, Credential::Pin(PIN_A)).unwrap();
    a.close().unwrap();

    let bytes = std::fs::read(key_file(&vault, USER_A)).unwrap();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    for (what, needle) in [
        ("the PIN", PIN_A.as_bytes().to_vec()),
        ("the PIN in hex", hex(PIN_A.as_bytes()).into_bytes()),
        ("the keystore key", KEYSTORE_A.to_vec()),
        ("the keystore key in hex", hex(&KEYSTORE_A).into_bytes()),
    ] {
        assert!(!contains(&bytes, &needle), "the key file holds {what}");
    }
    let candidates = candidate_keys(&bytes);
    assert!(
        candidates.len() > bytes.len() / 2,
        "{} candidates",
        candidates.len()
    );
    assert_eq!(
        keys_that_open(&store_file(&vault, USER_A), &candidates),
        0,
        "a 32-byte sequence of the key file opens the store"
    );

    // Control: the same search finds a key that is there, raw or in hex.
    let db = dir.path().join("control.db");
    let key = [0x5c; 32];
    Store::open(StoreConfig::new(&db, Encryption::Key(key), USER_A))
        .unwrap()
        .close()
        .unwrap();
    let leaky = format!("{{\"key\": \"{}\"}}", hex(&key));
    assert_eq!(keys_that_open(&db, &candidate_keys(leaky.as_bytes())), 1);
}

/// The unlock time with the default Argon2id parameters (19 MiB, 2 passes, 1 lane). Run with
/// `cargo test --release -p vigie-core --test integration -- vault:: --ignored --nocapture`.
#[test]
#[ignore]
fn measure_unlock_time_with_default_kdf() {
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::open(dir.path()).unwrap();
    let started = std::time::Instant::now();
    vault
        .create_user(USER_A, None, PIN_A)
        .unwrap()
        .close()
        .unwrap();
    let created = started.elapsed();
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = std::time::Instant::now();
        vault
            .unlock_with_pin(USER_A, PIN_A)
            .unwrap()
            .close()
            .unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    let started = std::time::Instant::now();
    let _ = vault.unlock_with_pin(USER_A, PIN_B);
    let wrong = started.elapsed();
    eprintln!(
        "default KDF {:?}: create {created:?}, unlock median {:?} (min {:?}, max {:?}), wrong PIN {wrong:?}",
        KdfParams::default(),
        times[2],
        times[0],
        times[4]
    );
}

/// A tablet two monitors share: the hub revokes the device of one's profile (she left; her
/// profile, locked by her PIN, holds her area's children), and the order reaches the tablet
/// through the other's sync. A profile made before the vault kept its device is known by it
/// from its next unlock.
#[test]
fn a_profile_whose_device_the_hub_revoked_is_found_through_another_profiles_sync() {
    let dir = tempfile::tempdir().unwrap();
    let vault = vault(dir.path());
    let mut hub = common::hub_store(&dir.path().join("hub.db"));
    let (leaver, stayer) = (Uuid::now_v7(), Uuid::now_v7());
    let leaver_device = Uuid::now_v7();
    let mut leaving = vault
        .create_user(leaver, Some(leaver_device), "482913")
        .unwrap();
    let principal = common::principal_of(&leaving, Role::CommunityMonitor, &["CI-R1-D1-C01"]);
    common::sync(&mut leaving, &mut hub, &principal);
    leaving.close().unwrap();
    let mut staying = vault.create_user(stayer, None, "730615").unwrap();
    let principal = common::principal_of(&staying, Role::CommunityMonitor, &["CI-R1-D1-C01"]);
    common::sync(&mut staying, &mut hub, &principal);
    assert!(vault.revoked_profiles(&staying).unwrap().is_empty());

    // A key file as an earlier version wrote it, without the device: nothing tells which of
    // its user's devices it is until it is unlocked (a guess would take an active user's
    // profile when another of her devices is revoked); then it is known by its device.
    let path = key_file(&vault, leaver);
    let mut json = key_json(&vault, leaver);
    json.as_object_mut().unwrap().remove("device");
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    common::revoke(leaver_device);
    common::sync(&mut staying, &mut hub, &principal);
    assert!(vault.revoked_profiles(&staying).unwrap().is_empty());
    vault
        .unlock_with_pin(leaver, "482913")
        .unwrap()
        .close()
        .unwrap();
    assert_eq!(
        key_json(&vault, leaver)["device"],
        leaver_device.to_string()
    );
    assert_eq!(vault.revoked_profiles(&staying).unwrap(), vec![leaver]);
    vault.wipe_user(leaver).unwrap();
    assert_eq!(vault.users().unwrap(), vec![stayer]);
    // A store of another vault (or none) is not asked.
    let other = Vault::open_with(dir.path().join("other"), config(5)).unwrap();
    assert!(matches!(
        other.revoked_profiles(&staying),
        Err(Error::NotAllowed { .. })
    ));
}

/// A file exported from one user's profile never replaces another's store or key on the same
/// phone (an app's path built from the wrong profile's directory): the other user would find
/// every record they had not synced gone, their PIN "wrong".
#[test]
fn an_export_never_replaces_another_profiles_store_or_key() {
    let dir = tempfile::tempdir().unwrap();
    let vault = vault(dir.path());
    let mut b = vault.create_user(USER_B, Some(DEVICE_B), PIN_B).unwrap();
    populate(&mut b, USER_B, "B", 1);
    b.close().unwrap();
    let mut a = vault.create_user(USER_A, Some(DEVICE_A), PIN_A).unwrap();
    let work = populate(&mut a, USER_A, "A", 1);
    let form = as_role(&mut a, Role::CommunityMonitor)
        .add_attachment(
            work.workplaces[0],
            &NewAttachment {
                kind: AttachmentKind::Document,
                media_type: "application/pdf".into(),
                caption: "Registre".into(),
            },
            &b"%PDF-1.4 registre"[..],
        )
        .unwrap();
    let theirs = vault.profile_dir(USER_B);
    for to in [
        theirs.join("store.db"),
        theirs.join("key.json"),
        theirs.join("anything.pdf"),
        dir.path().join("vault.lock"),
    ] {
        match a.export_attachment(form.id, &to) {
            Err(Error::Validation(v)) => assert_eq!(v.field, "path", "{to:?}"),
            other => panic!("{to:?}: {other:?}"),
        }
    }
    let outside = tempfile::tempdir().unwrap();
    a.export_attachment(form.id, &outside.path().join("registre.pdf"))
        .unwrap();
    a.close().unwrap();
    let b = vault.unlock_with_pin(USER_B, PIN_B).unwrap();
    assert_eq!(b.count(RecordKind::Workplace).unwrap(), 1);
}

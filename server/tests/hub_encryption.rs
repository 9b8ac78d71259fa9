//! The hub encrypted at rest, measured from outside: the bytes of an embedded hub's files, a
//! `pg_dump` of a PostgreSQL hub and PostgreSQL's statement log hold none of the names synced;
//! a missing or wrong key is a clear error and never an empty hub; `--unencrypted` only when
//! asked; the key file is the owner's alone; a database from before encryption is sealed in
//! place and keeps its records.

use crate::common;

use common::lifecycle::{quarantine_list, set_areas, store_files_holding};
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tempfile::TempDir;
use vigie_core::*;

/// Names no other test writes, each in a different record kind.
const CHILD: &str = "Zéphyrine Ouattara-Brou";
const WORKPLACE: &str = "Plantation Tchimou Ébène";
const STAFF: &str = "Superviseuse Ahoutou Gnagne";

/// Every file under `dir` (recursively) holding `needle` as UTF-8 bytes or as the hex digits a
/// dump writes a BYTEA in.
fn files_holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_holding(&path, needle));
        } else if holds(&std::fs::read(&path).unwrap(), needle) {
            found.push(path);
        }
    }
    found
}

fn holds(bytes: &[u8], needle: &str) -> bool {
    let hex: String = needle.bytes().map(|b| format!("{b:02x}")).collect();
    [needle.as_bytes(), hex.as_bytes()]
        .iter()
        .any(|n| bytes.windows(n.len()).any(|w| w == *n))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A supervisor's device (unencrypted, so that its own files show what the scan would find)
/// that creates a workplace and a child case with the test's names and syncs them.
fn sync_names(dir: &Path, hub: &Hub) -> Device {
    let mut device = Device::open_with(
        dir,
        "supervisor",
        &enrol(
            &hub.data,
            add_user(&hub.data, STAFF, Role::Supervisor, &[REGION]),
        ),
        Role::Supervisor,
        &[REGION],
        Encryption::Unencrypted,
    );
    let by = device.user();
    device
        .store
        .create(&workplace(area(C01), WORKPLACE))
        .unwrap();
    device.store.create(&child(area(C01), CHILD, by)).unwrap();
    let summary = device.sync(&hub.url).unwrap();
    assert_eq!(summary.accepted, 2, "{summary:?}");
    assert!(summary.refused.is_empty(), "{summary:?}");
    // The scan can find them: the device's own plain file holds them.
    for name in [CHILD, WORKPLACE] {
        assert!(
            !store_files_holding(&device.store, name).is_empty(),
            "the device's plain store should hold {name}"
        );
    }
    device
}

// ---------------------------------------------------------------------------------------------
// The embedded hub

/// A temporary directory and a hub data directory in it, for the embedded hub's tests; `None`
/// when the suite runs on PostgreSQL.
fn embedded_hub() -> Option<(TempDir, PathBuf)> {
    if postgres_server().is_some() {
        return None;
    }
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    Some((dir, data))
}

#[test]
fn a_default_hub_holds_no_name_in_its_files_and_keeps_its_key_outside_them() {
    let Some((dir, data)) = embedded_hub() else {
        return; // The embedded hub only.
    };
    let mut hub = Hub::start(&data);
    let _device = sync_names(dir.path(), &hub);
    // While it runs (the WAL holds the latest writes) and after it stopped.
    for phase in ["running", "stopped"] {
        for name in [CHILD, WORKPLACE, STAFF] {
            let found = files_holding(&data, name);
            assert!(found.is_empty(), "{phase}: {name} readable in {found:?}");
        }
        hub.stop();
    }
    let names: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&"hub.db".to_string()), "{names:?}");
    assert!(names.contains(&"devices.db".to_string()), "{names:?}");
    // The data directory the hub made is the owner's alone, as the key's is.
    assert_eq!(mode(&data), 0o700);
    // The key: made on first use, beside the data directory, the owner's alone.
    let key_file = dir.path().join("hub-key").join("hub.key");
    assert_eq!(mode(&key_file), 0o600);
    assert_eq!(mode(key_file.parent().unwrap()), 0o700);
    // The hub opens again with it, records and all.
    let store = hub.open_store();
    let children = store
        .child_cases(&Default::default(), Page::first(10))
        .unwrap();
    assert_eq!(children.len(), 1);
}

#[test]
fn an_unencrypted_hub_only_when_asked_and_told_apart_from_an_encrypted_one() {
    let Some((dir, data)) = embedded_hub() else {
        return; // The embedded hub only.
    };
    let data_arg = data.to_str().unwrap();
    let add = |extra: &[&str]| {
        let mut args = vec![
            "user",
            "add",
            "--data",
            data_arg,
            "--name",
            STAFF,
            "--role",
            "administrator",
        ];
        args.extend(extra);
        vigie_output(&args)
    };
    let out = add(&["--unencrypted"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Plain, as asked: the name is in the file, and no key was made.
    assert!(!files_holding(&data, STAFF).is_empty());
    assert!(!dir.path().join("hub-key").exists());
    let listed = vigie(&["user", "list", "--data", data_arg, "--unencrypted"]);
    assert!(listed.contains(STAFF));
    // Without --unencrypted: told so, and still no key made for it.
    let out = vigie_output(&["user", "list", "--data", data_arg]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not encrypted") && stderr(&out).contains("--unencrypted"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("hub-key").exists());
    // A key and --unencrypted together are refused.
    let out = vigie_output(&[
        "user",
        "list",
        "--data",
        data_arg,
        "--unencrypted",
        "--key-hex",
        &"ab".repeat(32),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot be combined"),
        "{}",
        stderr(&out)
    );

    // An encrypted hub opened with --unencrypted is told it is encrypted.
    let encrypted = dir.path().join("encrypted");
    let encrypted_arg = encrypted.to_str().unwrap();
    vigie(&[
        "user",
        "add",
        "--data",
        encrypted_arg,
        "--name",
        STAFF,
        "--role",
        "administrator",
    ]);
    let out = vigie_output(&["user", "list", "--data", encrypted_arg, "--unencrypted"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is encrypted"), "{}", stderr(&out));
}

/// A backup restored beside the write-ahead log of a hub that was killed: the right key does
/// not open the pair, and the error says the log may be another copy's, not only that the key
/// is wrong (an operator told so would take every backup for lost); with the log moved aside,
/// the backup opens.
#[test]
fn a_backup_restored_beside_a_killed_hubs_log_is_not_only_a_wrong_key() {
    let Some((dir, data)) = embedded_hub() else {
        return; // The embedded hub only.
    };
    let data_arg = data.to_str().unwrap();
    let mut hub = Hub::start(&data);
    let backup_dir = dir.path().join("backup");
    backup(&data, &backup_dir);
    let _device = sync_names(dir.path(), &hub);
    hub.kill();
    let wal = data.join("hub.db-wal");
    assert!(wal.metadata().is_ok_and(|m| m.len() > 0), "no log left");
    for file in ["hub.db", "devices.db"] {
        std::fs::copy(backup_dir.join(file), data.join(file)).unwrap();
    }

    let out = vigie_output(&["user", "list", "--data", data_arg]);
    let err = stderr(&out);
    assert!(
        !out.status.success(),
        "the backup opened with another copy's log"
    );
    assert!(err.contains(".db-wal belongs to another copy"), "{err}");
    assert!(err.contains("copy the backup's files in again"), "{err}");
    for log in [
        "hub.db-wal",
        "hub.db-shm",
        "devices.db-wal",
        "devices.db-shm",
    ] {
        let _ = std::fs::rename(data.join(log), dir.path().join(log));
    }
    for file in ["hub.db", "devices.db"] {
        std::fs::copy(backup_dir.join(file), data.join(file)).unwrap();
    }
    vigie(&["user", "list", "--data", data_arg]);
}

#[test]
fn a_missing_wrong_or_exposed_key_is_a_clear_error_never_an_empty_hub() {
    let Some((dir, data)) = embedded_hub() else {
        return; // The embedded hub only.
    };
    let data_arg = data.to_str().unwrap();
    let user = add_user(&data, STAFF, Role::Supervisor, &[REGION]);
    let key_file = dir.path().join("hub-key").join("hub.key");
    let size = |name: &str| std::fs::metadata(data.join(name)).unwrap().len();
    let sizes = (size("hub.db"), size("devices.db"));
    let fails_with = |args: &[&str], env: &[(&str, &str)], needle: &str| {
        let out = std::process::Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "warn")
            .env_remove("VIGIE_HUB_KEY")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = stderr(&out);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    };

    // Missing: the key file moved away. Every command says so, and makes no new key or hub.
    let kept = dir.path().join("kept.key");
    std::fs::rename(&key_file, &kept).unwrap();
    for args in [
        vec!["user", "list", "--data", data_arg],
        vec![
            "device",
            "enrol",
            "--data",
            data_arg,
            "--user",
            &user.to_string(),
        ],
        vec!["serve", "--data", data_arg, "--listen", "127.0.0.1:0"],
    ] {
        fails_with(&args, &[], "its key was not found");
    }
    assert!(!key_file.exists(), "a new key was made for an existing hub");
    assert_eq!((size("hub.db"), size("devices.db")), sizes);

    // Named elsewhere: found.
    let kept_arg = kept.to_str().unwrap();
    let listed = vigie(&["user", "list", "--data", data_arg, "--key-file", kept_arg]);
    assert!(listed.contains(STAFF));

    // Wrong: by VIGIE_HUB_KEY, or by a key file, for the store and for the registry.
    let wrong = "cd".repeat(32);
    fails_with(
        &["user", "list", "--data", data_arg],
        &[("VIGIE_HUB_KEY", &wrong)],
        "wrong key",
    );
    fails_with(
        &["device", "list", "--data", data_arg],
        &[("VIGIE_HUB_KEY", &wrong)],
        "wrong key",
    );
    let other = dir.path().join("other.key");
    std::fs::write(&other, format!("vigie-hub-key-v1 {wrong}\n")).unwrap();
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();
    fails_with(
        &[
            "user",
            "list",
            "--data",
            data_arg,
            "--key-file",
            other.to_str().unwrap(),
        ],
        &[],
        "wrong key",
    );

    // Exposed: a key file others may read is refused until it is the owner's alone.
    std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o644)).unwrap();
    fails_with(
        &["user", "list", "--data", data_arg, "--key-file", kept_arg],
        &[],
        "chmod 600",
    );
    std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o600)).unwrap();

    // Put back: the hub is whole.
    std::fs::rename(&kept, &key_file).unwrap();
    assert!(vigie(&["user", "list", "--data", data_arg]).contains(STAFF));

    // A mistyped --data: a command that works on an existing hub says there is none there,
    // and makes neither a hub nor a key (an empty new hub would answer that nobody exists).
    let typo = dir.path().join("hb");
    let typo_arg = typo.to_str().unwrap();
    let user_arg = user.to_string();
    let out_arg = dir.path().join("export");
    for args in [
        vec!["user", "list", "--data", typo_arg],
        vec!["device", "list", "--data", typo_arg],
        vec!["device", "enrol", "--data", typo_arg, "--user", &user_arg],
        vec!["reference", "list", "--data", typo_arg],
        vec!["quarantine", "list", "--data", typo_arg],
        vec!["console", "invite", "--data", typo_arg, "--user", &user_arg],
        // A user with an area: a new hub has no tree to check it against.
        vec![
            "user",
            "add",
            "--data",
            typo_arg,
            "--name",
            STAFF,
            "--role",
            "community-monitor",
            "--area",
            "CI-R1-D1-C01",
        ],
        vec![
            "export",
            "--data",
            typo_arg,
            "--out",
            out_arg.to_str().unwrap(),
        ],
    ] {
        fails_with(&args, &[], "no hub in");
        assert!(!typo.exists(), "{args:?} made the directory");
        assert!(!dir.path().join("hb-key").exists(), "{args:?} made a key");
    }
    // Half a hub (a partial restore, a deleted file): every command refuses it, `serve`
    // included, and nothing is made in place of the missing file.
    for missing in ["hub.db", "devices.db"] {
        let aside = dir.path().join("aside");
        std::fs::rename(data.join(missing), &aside).unwrap();
        for args in [
            vec!["user", "list", "--data", data_arg],
            vec!["reference", "list", "--data", data_arg],
            vec!["quarantine", "list", "--data", data_arg],
            vec![
                "user",
                "add",
                "--data",
                data_arg,
                "--name",
                "X",
                "--role",
                "supervisor",
                "--area",
                "CI-R1",
            ],
            vec!["serve", "--data", data_arg, "--listen", "127.0.0.1:0"],
        ] {
            fails_with(&args, &[], &format!("has no {missing}"));
            assert!(!data.join(missing).exists(), "{args:?} made {missing}");
        }
        std::fs::rename(&aside, data.join(missing)).unwrap();
    }
    assert!(vigie(&["user", "list", "--data", data_arg]).contains(STAFF));

    // An export that cannot be written names where it was going.
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"").unwrap();
    let unwritable = blocker.join("export");
    let unwritable_arg = unwritable.to_str().unwrap();
    fails_with(
        &["export", "--data", data_arg, "--out", unwritable_arg],
        &[],
        unwritable_arg,
    );
    // Nor does one go into the data directory (every copy of it would hold the children's
    // names in clear) or beside the key.
    for (inside, said) in [
        (data.join("exports"), "inside the hub's data directory"),
        (
            key_file.parent().unwrap().join("exports"),
            "in the directory of the hub's key",
        ),
    ] {
        let inside_arg = inside.to_str().unwrap();
        fails_with(
            &[
                "export",
                "--data",
                data_arg,
                "--out",
                inside_arg,
                "--personal",
            ],
            &[],
            said,
        );
        assert!(!inside.exists());
    }
}

/// A new hub named with a trailing `/.` (`--data ./vigie-data/.`) is made, its key where it
/// would be for `vigie-data`.
#[test]
fn a_new_hub_named_with_a_trailing_dot_is_made_with_its_key_beside_it() {
    let Some((dir, _)) = embedded_hub() else {
        return; // The embedded hub only.
    };
    let data = dir.path().join("region");
    let named = format!("{}/.", data.display());
    vigie(&[
        "reference",
        "publish",
        "--data",
        &named,
        crate::common::reference::SAMPLE_AREAS,
    ]);
    assert!(data.join("hub.db").exists());
    assert!(dir.path().join("region-key").join("hub.key").exists());
    assert!(vigie(&["reference", "list", "--data", &named]).contains("CI"));
}

#[test]
fn a_key_file_named_for_a_new_hub_is_made_there_owner_only() {
    let Some((dir, data)) = embedded_hub() else {
        return; // The embedded hub only.
    };
    let key_file = dir.path().join("secrets").join("vigie").join("hub.key");
    vigie(&[
        "user",
        "add",
        "--data",
        data.to_str().unwrap(),
        "--key-file",
        key_file.to_str().unwrap(),
        "--name",
        STAFF,
        "--role",
        "administrator",
    ]);
    assert_eq!(mode(&key_file), 0o600);
    assert_eq!(mode(key_file.parent().unwrap()), 0o700);
    assert!(!dir.path().join("hub-key").exists());
    assert!(files_holding(&data, STAFF).is_empty());
    let text = std::fs::read_to_string(&key_file).unwrap();
    assert!(
        text.starts_with("vigie-hub-key-v1 "),
        "the key file's format"
    );
    // The same key given by VIGIE_HUB_KEY opens it.
    let key = text.trim().rsplit(' ').next().unwrap();
    let out = std::process::Command::new(BIN)
        .args(["user", "list", "--data", data.to_str().unwrap()])
        .env("VIGIE_HUB_KEY", key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(STAFF));
}

/// A key file inside the data directory (a copy of the directory would hold what reads it),
/// and two keys given at once, are refused before anything is made.
#[test]
fn a_key_inside_the_data_or_two_keys_at_once_are_refused() {
    let Some((dir, data)) = embedded_hub() else {
        return;
    };
    let data_arg = data.to_str().unwrap();
    let publish_with = |key_file: &Path| {
        vigie_output(&[
            "reference",
            "publish",
            "--data",
            data_arg,
            "--key-file",
            key_file.to_str().unwrap(),
            common::reference::SAMPLE_AREAS,
        ])
    };
    let inside = data.join("hub.key");
    let out = publish_with(&inside);
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(said.contains("inside the hub's data directory"), "{said}");
    assert!(!inside.exists() && !data.join("hub.db").exists());
    // Spelt another way (through `..`): the same place.
    let round = dir
        .path()
        .join("elsewhere")
        .join("..")
        .join("hub")
        .join("k.key");
    let out = publish_with(&round);
    assert!(
        stderr(&out).contains("inside the hub's data directory"),
        "{}",
        stderr(&out)
    );

    let outside = dir.path().join("keys").join("hub.key");
    let out = std::process::Command::new(BIN)
        .args(["reference", "publish", "--data", data_arg, "--key-file"])
        .arg(&outside)
        .arg(common::reference::SAMPLE_AREAS)
        .env("VIGIE_HUB_KEY", "ab".repeat(32))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("two keys given"), "{}", stderr(&out));
    assert!(!outside.exists() && !data.join("hub.db").exists());

    // VIGIE_HUB_KEY beside the key file a hub found by default: two keys as well (the file's
    // journal would be neither read nor written).
    add_user(&data, STAFF, Role::Administrator, &[]);
    let key = std::fs::read_to_string(dir.path().join("hub-key").join("hub.key")).unwrap();
    let key = key.trim().rsplit(' ').next().unwrap().to_string();
    let out = std::process::Command::new(BIN)
        .args(["user", "list", "--data", data_arg])
        .env("VIGIE_HUB_KEY", &key)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("two keys given") && stderr(&out).contains("hub.key"),
        "{}",
        stderr(&out)
    );

    // A --data that is a file: said so, and no key made for it.
    let file = dir.path().join("afile");
    std::fs::write(&file, "x").unwrap();
    let out = vigie_output(&[
        "user",
        "add",
        "--data",
        file.to_str().unwrap(),
        "--name",
        STAFF,
        "--role",
        "administrator",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is not a directory"),
        "{}",
        stderr(&out)
    );
    // `serve`, which makes a missing data directory, says the same.
    let out = vigie_output(&[
        "serve",
        "--data",
        file.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is not a directory"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("afile-key").exists());
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/// PostgreSQL's programs and its server's log (`scripts/postgres.sh`).
fn postgres_script(what: &str) -> PathBuf {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/postgres.sh");
    let out = std::process::Command::new(script)
        .arg(what)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn pg_dump(url: &str, into: &Path) -> Vec<u8> {
    let out = std::process::Command::new(postgres_script("bin").join("pg_dump"))
        .args(["--no-owner", "--dbname", url])
        .output()
        .unwrap();
    assert!(out.status.success(), "pg_dump: {}", stderr(&out));
    std::fs::write(into, &out.stdout).unwrap();
    out.stdout
}

/// Turns on the logging of every statement (with its parameters) for one database's sessions.
fn log_every_statement(url: &str) {
    let (_, name) = url.rsplit_once('/').unwrap();
    let mut client = postgres::Client::connect(postgres_server_always(), postgres::NoTls).unwrap();
    client
        .batch_execute(&format!("ALTER DATABASE {name} SET log_statement = 'all'"))
        .unwrap();
}

/// What the server logged since `from` (a byte offset of its log).
fn log_since(log: &Path, from: u64) -> Vec<u8> {
    let bytes = std::fs::read(log).unwrap();
    bytes[(from as usize).min(bytes.len())..].to_vec()
}

#[test]
fn a_postgres_hub_holds_no_name_in_a_dump_or_in_the_server_log() {
    let Some(_) = postgres_server() else {
        return; // The PostgreSQL suite runs it.
    };
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let url = hub_database(&data).unwrap();
    log_every_statement(&url);
    let log = postgres_script("log");
    let log_start = std::fs::metadata(&log).unwrap().len();
    let hub = Hub::start(&data);
    let mut device = sync_names(dir.path(), &hub);
    // A move (the area history) and a change held for review (the quarantine) too.
    let by = device.user();
    let mut moved = device
        .store
        .create(&child(area(C01), "Brou Ahou Lucienne", by))
        .unwrap();
    device.sync(&hub.url).unwrap();
    moved.area = area(C02);
    moved.name = "Brou Ahou Lucienne-Marie".into();
    device.store.update(&moved).unwrap();
    device.sync(&hub.url).unwrap();
    let monitor_user = add_user(&data, "Moniteur Yapi", Role::CommunityMonitor, &[C01]);
    let mut monitor = Device::open_with(
        dir.path(),
        "monitor",
        &enrol(&data, monitor_user),
        Role::CommunityMonitor,
        &[C01],
        Encryption::Unencrypted,
    );
    monitor.sync(&hub.url).unwrap();
    let case = monitor
        .store
        .child_cases(&Default::default(), Page::first(10))
        .unwrap()
        .into_iter()
        .find(|c| c.community == C01)
        .expect("the monitor received the child case of its community");
    let mut case = monitor.store.get::<ChildCase>(case.id).unwrap();
    set_areas(&data, monitor_user, &[C02]);
    case.name = "Zéphyrine Ouattara-Brou Quarantaine".into();
    monitor.store.update(&case).unwrap();
    let summary = monitor.sync(&hub.url).unwrap();
    assert_eq!(summary.quarantined.len(), 1, "{summary:?}");
    // The console: a supervisor's sign-in name, and a name typed in the sign-in field (the
    // throttle counts attempts under what was typed, and the address).
    let mut browser = common::console::Browser::new(&hub.url);
    common::console::account(
        &mut browser,
        &data,
        by,
        "ahoutou.gnagne",
        "Un mot de passe assez long",
    );
    let refused = common::console::Browser::new(&hub.url).sign_in("tiemoko.kouassi", "pas le bon");
    assert_ne!(refused.status, 303, "a wrong password signs nobody in");
    assert_eq!(
        browser
            .sign_in("ahoutou.gnagne", "Un mot de passe assez long")
            .status,
        303,
        "the sealed sign-in name is found again"
    );

    let dump = pg_dump(&url, &dir.path().join("dump.sql"));
    let logged = log_since(&log, log_start);
    // The scans see what they must: the dump has the tables' rows, the log our statements.
    assert!(
        holds(&dump, "COPY public.records"),
        "the dump holds the records"
    );
    assert!(
        holds(&logged, "INSERT INTO records"),
        "statements were not logged"
    );
    assert!(holds(&logged, "parameters:"), "parameters were not logged");
    for name in [
        CHILD,
        WORKPLACE,
        STAFF,
        "Brou Ahou Lucienne",
        "Moniteur Yapi",
        "Quarantaine",
        "ahoutou.gnagne",
        "tiemoko.kouassi",
        "address:",
        C01,
        C02,
    ] {
        assert!(!holds(&dump, name), "{name} is readable in a pg_dump");
        assert!(!holds(&logged, name), "{name} is in PostgreSQL's log");
    }
    // The hub itself reads everything back.
    drop(hub);
    let hub = Hub::start(&data);
    let mut fresh = Device::open(
        dir.path(),
        "fresh",
        &enrol(&data, by),
        Role::Supervisor,
        &[REGION],
        9,
    );
    fresh.sync(&hub.url).unwrap();
    let names: Vec<String> = fresh
        .store
        .child_cases(&Default::default(), Page::first(10))
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert!(names.contains(&CHILD.to_string()), "{names:?}");
    assert!(
        names.contains(&"Brou Ahou Lucienne-Marie".to_string()),
        "{names:?}"
    );
    let (listed, entries) = quarantine_list(&data);
    assert_eq!(entries.len(), 1, "{listed}");
}

#[test]
fn a_postgres_hub_refuses_a_wrong_or_missing_key_and_unencrypted() {
    let Some(_) = postgres_server() else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let url = hub_database(&data).unwrap();
    let data_arg = data.to_str().unwrap();
    add_user(&data, STAFF, Role::Supervisor, &[REGION]);
    let key_file = dir.path().join("hub-key").join("hub.key");
    assert_eq!(mode(&key_file), 0o600);
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = std::process::Command::new(BIN)
            .args(args)
            .args(["--data", data_arg, "--database", &url])
            .env_remove("VIGIE_HUB_KEY")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        stderr(&out)
    };
    let wrong = "cd".repeat(32);
    // Beside the key file, a key by VIGIE_HUB_KEY is a second key; alone, a wrong one.
    let err = run(&["user", "list"], &[("VIGIE_HUB_KEY", &wrong)]);
    assert!(err.contains("two keys given"), "{err}");
    let err = run(&["user", "list", "--unencrypted"], &[]);
    assert!(err.contains("always encrypted"), "{err}");
    std::fs::remove_file(&key_file).unwrap();
    let err = run(&["user", "list"], &[("VIGIE_HUB_KEY", &wrong)]);
    assert!(err.contains("wrong key"), "{err}");
    // In the words of a database, not of the embedded hub's files.
    assert!(err.contains("database") && !err.contains("files"), "{err}");
    let err = run(&["user", "list"], &[]);
    assert!(err.contains("its key was not found"), "{err}");
    assert!(!key_file.exists(), "a new key was made for an existing hub");
}

/// The schema of a database before encryption (version 5), as shipped.
const VERSION_5: &[&str] = &[
    include_str!("../src/postgres/migrations/001_records.sql"),
    include_str!("../src/postgres/migrations/002_erasure_and_quarantine.sql"),
    include_str!("../src/postgres/migrations/003_last_seen.sql"),
    include_str!("../src/postgres/migrations/004_record_lifecycle.sql"),
    include_str!("../src/postgres/migrations/005_reference_index.sql"),
];

#[test]
fn a_version_5_database_is_sealed_in_place_and_keeps_its_records() {
    let Some(_) = postgres_server() else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let url = fresh_database("seal");
    // The records, made by the core as a hub of version 5 stored them (in clear).
    let scratch = dir.path().join("scratch");
    let mut store = vigie_server::open_store(&scratch, Encryption::Unencrypted).unwrap();
    let areas =
        ReferenceFile::parse(&std::fs::read_to_string(common::reference::SAMPLE_AREAS).unwrap())
            .unwrap();
    store.publish_reference(&areas.key, areas.content).unwrap();
    let by = uuid::Uuid::new_v4();
    let case = store.create(&child(area(C01), CHILD, by)).unwrap();
    let place = store.create(&workplace(area(C02), WORKPLACE)).unwrap();
    let mut ids: Vec<(uuid::Uuid, i16, Option<Area>)> = store
        .ids_of_kind(RecordKind::Reference)
        .unwrap()
        .into_iter()
        .map(|id| (id, RecordKind::Reference as i16, None))
        .collect();
    ids.push((case.id, RecordKind::ChildCase as i16, Some(area(C01))));
    ids.push((place.id, RecordKind::Workplace as i16, Some(area(C02))));
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    for migration in VERSION_5 {
        client.batch_execute(migration).unwrap();
    }
    client
        .batch_execute(
            "INSERT INTO vigie_meta (key, value) VALUES ('schema_version', '5');
             SELECT setval('change_seq', 100);",
        )
        .unwrap();
    for (seq, (id, kind, area)) in ids.iter().enumerate() {
        let document = automerge::Automerge::load(&store.export_document(*id).unwrap()).unwrap();
        let stored = vigie_core::codec::encode(*id, &document).unwrap().stored;
        let heads = vigie_core::codec::heads_bytes(&document.get_heads());
        let seq = seq as i64 + 1;
        let (c, r, d, m) = match area {
            Some(a) => (
                Some(a.country.clone()),
                Some(a.region.clone()),
                Some(a.district.clone()),
                Some(a.community.clone()),
            ),
            None => (None, None, None, None),
        };
        client
            .execute(
                "INSERT INTO records (id, kind, doc, heads, last_seq, first_seq, creator,
                     country, region, district, community)
                 VALUES ($1, $2, $3, $4, $5, $5, NULL, $6, $7, $8, $9)",
                &[id, kind, &stored, &heads, &seq, &c, &r, &d, &m],
            )
            .unwrap();
        client
            .execute(
                "INSERT INTO change_log (seq, record_id, changes, device_id, at_ms)
                 VALUES ($1, $2, $3, NULL, 0)",
                &[
                    &seq,
                    id,
                    &vigie_core::codec::new_change_hashes(&document, &[]),
                ],
            )
            .unwrap();
    }
    // The workplace was filed in C01 before (the area history), and a change to the case
    // waits in the quarantine, its bytes in clear.
    let case_doc = automerge::Automerge::load(&store.export_document(case.id).unwrap()).unwrap();
    let change: Vec<u8> = case_doc
        .get_changes(&[])
        .iter()
        .flat_map(|c| c.raw_bytes().to_vec())
        .collect();
    client
        .execute(
            "INSERT INTO area_history (seq, record_id, kind, country, region, district, community)
             VALUES (3, $1, 3, 'CI', 'CI-R1', 'CI-R1-D1', 'CI-R1-D1-C01')",
            &[&place.id],
        )
        .unwrap();
    client
        .execute(
            "INSERT INTO quarantine (record_id, device_id, user_id, changes, received_ms)
             VALUES ($1, $2, $2, $3, 0)",
            &[&case.id, &by, &change],
        )
        .unwrap();
    drop(client);
    let before = pg_dump(&url, &dir.path().join("before.sql"));
    assert!(
        holds(&before, C02),
        "the version 5 dump shows its areas in clear"
    );

    // Upgraded in place by a hub with its key.
    let data = dir.path().join("hub");
    let hub = Hub::start_on(&data, &url);
    let after = pg_dump(&url, &dir.path().join("after.sql"));
    for clear in [CHILD, WORKPLACE, C01, C02] {
        assert!(
            !holds(&after, clear),
            "{clear} is still readable after the upgrade"
        );
    }
    // Every record kept: a supervisor of the region receives both, by the hashed scope.
    let key = ["--key-hex", SHARED_HUB_KEY];
    let database = ["--database", url.as_str()];
    let data_arg = data.to_str().unwrap();
    let mut args = vec!["user", "add", "--data", data_arg, "--name", "Chef"];
    args.extend(["--role", "supervisor", "--area", REGION]);
    args.extend(key);
    args.extend(database);
    let user = vigie(&args);
    let mut args = vec!["device", "enrol", "--data", data_arg, "--user", &user];
    args.extend(key);
    args.extend(database);
    let token = vigie(&args);
    let mut device = Device::open(dir.path(), "chef", &token, Role::Supervisor, &[REGION], 3);
    device.sync(&hub.url).unwrap();
    assert_eq!(device.store.get::<ChildCase>(case.id).unwrap().name, CHILD);
    assert_eq!(
        device.store.get::<Workplace>(place.id).unwrap().name,
        WORKPLACE
    );
    let mut args = vec!["quarantine", "list", "--data", data_arg];
    args.extend(key);
    args.extend(database);
    let listed = vigie(&args);
    assert!(listed.contains(&case.id.to_string()), "{listed}");
    // Where each record's history starts, found in its document (migration 012).
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let counts = client
        .query_one("SELECT count(*), count(root) FROM records", &[])
        .unwrap();
    let (records, rooted): (i64, i64) = (counts.get(0), counts.get(1));
    assert!(records > 2);
    assert_eq!(rooted, records, "every record's root");
    drop(client);
    drop(hub);
    drop_database(&url);
}

/// Two processes starting at once on a new PostgreSQL database, each with a key file of its own
/// (two machines, the key not copied yet): one makes the hub; the other says the database holds
/// a hub whose key it lacks, and neither announces nor leaves a key of its own. It said the
/// database held a newer schema's tables, or that its key did not open the hub, after saying
/// "a new hub" and leaving a key file that was not the hub's.
#[test]
fn two_processes_starting_on_a_new_database_make_one_hub() {
    let Some(_) = postgres_server() else {
        return; // The PostgreSQL suite runs it.
    };
    for round in 0..3 {
        let dir = TempDir::new().unwrap();
        let url = fresh_database(&format!("twostarts{round}"));
        let runs: Vec<_> = (0..2)
            .map(|n| {
                let (url, dir) = (url.clone(), dir.path().to_path_buf());
                std::thread::spawn(move || {
                    let key = dir.join(format!("machine{n}")).join("hub.key");
                    let data = dir.join(format!("data{n}"));
                    let out = vigie_output(&[
                        "user",
                        "add",
                        "--data",
                        data.to_str().unwrap(),
                        "--database",
                        &url,
                        "--key-file",
                        key.to_str().unwrap(),
                        "--name",
                        STAFF,
                        "--role",
                        "administrator",
                    ]);
                    (key, out)
                })
            })
            .collect();
        let outcomes: Vec<_> = runs.into_iter().map(|run| run.join().unwrap()).collect();
        let made: Vec<_> = outcomes
            .iter()
            .filter(|(_, out)| out.status.success())
            .collect();
        let said: Vec<String> = outcomes.iter().map(|(_, out)| stderr(out)).collect();
        assert_eq!(made.len(), 1, "{said:?}");
        let (lost_key, lost) = outcomes
            .iter()
            .find(|(_, out)| !out.status.success())
            .unwrap();
        let lost_said = stderr(lost);
        assert!(lost_said.contains("key"), "{lost_said}");
        assert!(!lost_said.contains("a new hub"), "{lost_said}");
        assert!(!lost_said.contains("newer"), "{lost_said}");
        assert!(!lost_key.exists(), "{lost_said}");
    }
}

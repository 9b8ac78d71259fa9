//! Running a hub as an operator does: paths as the shell writes them, one `vigie serve` per
//! data directory, a directory the hub's user cannot write, a full disk, a PostgreSQL database
//! that is empty, missing or out of reach.

use crate::common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use vigie_core::{Encryption, Role, Store, StoreConfig};

/// Runs `vigie <args>`, which must fail within `within`; returns its stderr.
fn fails_within(args: &[&str], env: &[(&str, &str)], within: Duration) -> String {
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "info")
        .env_remove("VIGIE_HUB_KEY")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > within {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "vigie {args:?} still ran after {within:?}: {}",
                stderr(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "vigie {args:?} succeeded");
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// A directory for an embedded hub (none when the suite runs on PostgreSQL).
fn embedded() -> Option<TempDir> {
    postgres_server().is_none().then(|| TempDir::new().unwrap())
}

#[test]
fn the_key_lands_beside_the_data_directory_however_the_path_is_written() {
    let Some(dir) = embedded() else {
        return;
    };
    let data = dir.path().join("vigie-data");
    let slashed = format!("{}/", data.display());
    vigie(&[
        "user",
        "add",
        "--data",
        &slashed,
        "--name",
        "Operator",
        "--role",
        "administrator",
    ]);
    let key_file = dir.path().join("vigie-data-key").join("hub.key");
    assert!(key_file.exists(), "the key is beside the directory");
    assert!(
        !data.join("-key").exists(),
        "the key was written inside the data directory"
    );
    for spelt in [
        data.display().to_string(),
        slashed.clone(),
        format!("{}/.", data.display()),
    ] {
        assert!(
            vigie(&["user", "list", "--data", &spelt]).contains("Operator"),
            "{spelt}"
        );
    }

    // The key directory is owner-only, as its file: refused otherwise, naming it.
    let key_dir = key_file.parent().unwrap();
    std::fs::set_permissions(key_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = fails_within(
        &["user", "list", "--data", &slashed],
        &[],
        Duration::from_secs(30),
    );
    assert!(
        err.contains(&key_dir.display().to_string()) && err.contains("chmod 700"),
        "{err}"
    );
    std::fs::set_permissions(key_dir, std::fs::Permissions::from_mode(0o700)).unwrap();

    // A bad key names where it came from.
    let err = fails_within(
        &["user", "list", "--data", &slashed],
        &[("VIGIE_HUB_KEY", "abc")],
        Duration::from_secs(30),
    );
    assert!(err.contains("VIGIE_HUB_KEY"), "{err}");
    let bad_file = dir.path().join("bad.key");
    std::fs::write(&bad_file, "vigie-hub-key-v1 abc\n").unwrap();
    std::fs::set_permissions(&bad_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = fails_within(
        &[
            "user",
            "list",
            "--data",
            &slashed,
            "--key-file",
            bad_file.to_str().unwrap(),
        ],
        &[],
        Duration::from_secs(30),
    );
    assert!(err.contains(&bad_file.display().to_string()), "{err}");
}

/// `vigie serve` on an address it cannot listen on (a typo, a port in use) says so and leaves
/// nothing behind: no new hub, no key for it.
#[test]
fn serve_on_an_address_it_cannot_listen_on_makes_no_hub() {
    let Some(dir) = embedded() else {
        return;
    };
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let data = dir.path().join("new-hub");
    let data_arg = data.to_str().unwrap();
    for address in ["999.0.0.1:80", port.as_str()] {
        let err = fails_within(
            &["serve", "--data", data_arg, "--listen", address],
            &[],
            Duration::from_secs(20),
        );
        assert!(err.contains("cannot listen on"), "{err}");
    }
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn one_serve_per_data_directory_and_the_commands_beside_it() {
    let Some(dir) = embedded() else {
        return;
    };
    let data = dir.path().join("hub");
    let staff = add_user(&data, "Staff", Role::Supervisor, &[REGION]);
    let mut hub = Hub::start(&data);
    for spelt in [data.display().to_string(), format!("{}/", data.display())] {
        let err = fails_within(
            &["serve", "--data", &spelt, "--listen", "127.0.0.1:0"],
            &[],
            Duration::from_secs(30),
        );
        assert!(err.contains("another `vigie serve` is running"), "{err}");
    }
    // The first hub still serves, and the commands work beside it.
    health(&hub.url).unwrap();
    let data_arg = data.to_str().unwrap();
    assert!(vigie(&["user", "list", "--data", data_arg]).contains(&staff.to_string()));
    let device = enrol(&data, staff);
    assert!(device.starts_with("vgd1."));
    // Once it has stopped, however it stopped, another may serve.
    hub.kill();
    hub.restart();
    health(&hub.url).unwrap();
}

/// The `vigie` binary where another user may run it, and how to run it as that user: as root,
/// the tests run it as `nobody` (root writes anywhere); otherwise as the test's own user.
fn as_another_user(dir: &Path) -> (PathBuf, Option<u32>) {
    // SAFETY: reads the process's own ids.
    if unsafe { libc::geteuid() } != 0 {
        return (PathBuf::from(BIN), None);
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.join("vigie");
    if std::fs::hard_link(BIN, &bin).is_err() {
        std::fs::copy(BIN, &bin).unwrap();
    }
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    (bin, Some(65534))
}

#[test]
fn a_data_directory_this_user_cannot_write_is_named() {
    let Some(dir) = embedded() else {
        return;
    };
    let data = dir.path().join("hub");
    add_user(&data, "Staff", Role::Supervisor, &[REGION]);
    let key = std::fs::read_to_string(dir.path().join("hub-key").join("hub.key")).unwrap();
    let key = key.trim().rsplit(' ').next().unwrap().to_string();
    // The key given by --key-hex alone (beside its file, it would be two keys).
    std::fs::rename(dir.path().join("hub-key"), dir.path().join("key-aside")).unwrap();
    let (bin, uid) = as_another_user(dir.path());
    let run = |args: &[&str]| {
        let mut command = Command::new(&bin);
        command
            .args(args)
            .args(["--data", data.to_str().unwrap(), "--key-hex", &key])
            .env("RUST_LOG", "warn")
            .env_remove("VIGIE_HUB_KEY")
            .stdin(Stdio::null());
        if let Some(uid) = uid {
            std::os::unix::process::CommandExt::uid(&mut command, uid);
            std::os::unix::process::CommandExt::gid(&mut command, uid);
        }
        let out = command.output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        stderr(&out)
    };
    let data_dir = data.display().to_string();
    // Files and directory read-only for this user.
    for file in ["hub.db", "devices.db"] {
        std::fs::set_permissions(data.join(file), std::fs::Permissions::from_mode(0o444)).unwrap();
    }
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o555)).unwrap();
    for args in [
        &["user", "list"][..],
        &["device", "list"],
        &["serve", "--listen", "127.0.0.1:0"],
    ] {
        let err = run(args);
        assert!(
            err.contains(&format!("the data directory {data_dir} cannot be written")),
            "{args:?}: {err}"
        );
    }
    // The directory writable, a file not.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = run(&["user", "list"]);
    assert!(
        err.contains("cannot be written") && err.contains(&data_dir) && err.contains(".db"),
        "{err}"
    );
    // The store's file alone (a backup copied back from a read-only archive): SQLite would
    // open it read-only, and the hub serve, then fail every sync.
    std::fs::set_permissions(
        data.join("devices.db"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    for args in [
        &["user", "list"][..],
        &["serve", "--listen", "127.0.0.1:0"],
        &["export", "--out", "/nonexistent/export"],
    ] {
        let err = run(args);
        assert!(
            err.contains(&format!(
                "the hub's file {data_dir}/hub.db cannot be written"
            )),
            "{args:?}: {err}"
        );
    }
    // Nor read: not taken for a directory without a hub.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    if uid.is_some() {
        let err = run(&["user", "list"]);
        assert!(
            err.contains(&format!("the data directory {data_dir} cannot be read")),
            "{err}"
        );
    }
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A small file system mounted at `at` (a tmpfs: only as root), unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| SmallDisk(at.to_path_buf()))
    }

    /// Fills what is left of the disk; returns the file that fills it.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.0.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0xa5u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        let _ = file.flush();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A phone's store closed cleanly, then its disk filled to the last byte: opening it fails
/// (its write-ahead files are made at opening) as a full disk, which SQLite calls a "disk I/O
/// error"; once space is freed it opens with all it held.
#[test]
fn a_store_on_a_full_disk_says_the_disk_is_full_and_opens_once_freed() {
    let dir = TempDir::new().unwrap();
    let Some(disk) = SmallDisk::mount(&dir.path().join("phone"), "4m") else {
        eprintln!("no tmpfs can be mounted here (not root): skipped");
        return;
    };
    let user = uuid::Uuid::now_v7();
    let config = || StoreConfig::new(disk.0.join("phone.db"), Encryption::Key([3; 32]), user);
    let mut store = Store::open(config()).unwrap();
    let place = store.create(&workplace(area(C01), "Champ")).unwrap().id;
    store.close().unwrap();
    let filler = disk.fill();
    for _ in 0..2 {
        let e = Store::open(config()).unwrap_err();
        assert!(e.is_disk_full(), "{e}");
    }
    std::fs::remove_file(filler).unwrap();
    let store = Store::open(config()).unwrap();
    assert!(store.kind_of(place).is_ok());
    assert!(!disk.0.join("phone.space-check").exists());
}

#[test]
fn a_full_disk_is_answered_503_and_said_in_the_log() {
    let Some(dir) = embedded() else {
        return;
    };
    let data = dir.path().join("hub");
    let Some(disk) = SmallDisk::mount(&data, "48m") else {
        eprintln!("no tmpfs can be mounted here (not root): skipped");
        return;
    };
    let mut hub = Hub::start(&data);
    let mut monitor = Device::enrol(
        dir.path(),
        &data,
        "monitor",
        Role::CommunityMonitor,
        &[C01],
        7,
    );
    monitor.sync(&hub.url).unwrap();
    // Restarted: the hub's write-ahead log starts small again, and must grow for what follows.
    hub.stop();
    hub.restart();
    // Notes that do not compress: the push must take room on the disk.
    record_incompressible_workplaces(&mut monitor, 0x9e37_79b9_7f4a_7c15);
    let request = monitor
        .store
        .hub_sync_request(&vigie_core::sync::SyncOptions::default())
        .unwrap();
    // A phone enrolled, never synced: its first sync has the hub certify its keys.
    let mut newcomer = Device::enrol(
        dir.path(),
        &data,
        "newcomer",
        Role::CommunityMonitor,
        &[C01],
        8,
    );
    let first = newcomer
        .store
        .hub_sync_request(&vigie_core::sync::SyncOptions::default())
        .unwrap();
    let filler = disk.fill();
    let (status, retry, body) = answer_to(&hub.url, &monitor, &request);
    assert_eq!(status, 503, "{body}\n{}", hub.log_tail(20));
    assert!(retry, "no Retry-After");
    assert!(body.contains("full"), "{body}");
    assert!(
        hub.log_tail(50).contains("the hub's disk is full"),
        "{}",
        hub.log_tail(20)
    );
    let (status, _, _) = answer_to(&hub.url, &newcomer, &first);
    assert_eq!(status, 503, "{}", hub.log_tail(20));
    // What only reads the hub goes on: its users listed, a backup made elsewhere (reported
    // whole, the journal's missing entry said).
    let listed = vigie_output(&["user", "list", "--data", data.to_str().unwrap()]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let out = dir.path().join("backup");
    let backed = backup_output(&data, &out);
    let said = String::from_utf8_lossy(&backed.stdout).to_string();
    assert!(
        said.contains("backup of the hub as it was at"),
        "{said}{}",
        stderr(&backed)
    );
    assert!(
        stderr(&backed).contains("done (hub_backup)"),
        "{}",
        stderr(&backed)
    );
    // Space freed: the same devices sync.
    std::fs::remove_file(filler).unwrap();
    let summary = monitor.sync(&hub.url).unwrap();
    assert_eq!(summary.pending, 0, "{summary:?}");
    newcomer.sync(&hub.url).unwrap();
    hub.kill();
    drop(disk);
}

/// A file-size limit (`ulimit -f`, systemd's `LimitFSIZE`) reached by a write is that write's
/// error, not a signal that ends the process (`main` ignores it for every command, `serve`
/// included): a backup or an export fails saying so, leaving nothing of itself behind (an export's part file held personal data
/// in clear).
#[test]
fn a_file_size_limit_fails_a_write_and_ends_nothing() {
    let Some(dir) = embedded() else {
        return;
    };
    let data = dir.path().join("hub");
    let mut hub = Hub::start(&data);
    let mut monitor = Device::enrol(
        dir.path(),
        &data,
        "monitor",
        Role::CommunityMonitor,
        &[C01],
        9,
    );
    for i in 0..40 {
        let mut place = workplace(area(C01), &format!("Workplace {i}"));
        place.notes = format!("{i:04} ").repeat(400);
        monitor.store.create(&place).unwrap();
    }
    assert_eq!(monitor.sync(&hub.url).unwrap().pending, 0);
    let limited = |args: &[&str]| {
        Command::new("bash")
            .args(["-c", "ulimit -f 16; exec \"$0\" \"$@\"", BIN])
            .args(args)
            .output()
            .unwrap()
    };
    let data_arg = data.to_str().unwrap();
    for (what, out) in [("backup", "backup"), ("export", "export")] {
        let out = dir.path().join(out);
        let mut args = vec![what, "--data", data_arg, "--out", out.to_str().unwrap()];
        if what == "export" {
            args.extend(["--format", "json", "--personal"]);
        }
        let done = limited(&args);
        let said = String::from_utf8_lossy(&done.stderr);
        assert_eq!(done.status.code(), Some(1), "{what}: {said}");
        assert!(said.starts_with("vigie: "), "{what}: {said}");
        let left: Vec<_> = std::fs::read_dir(&out)
            .map(|entries| entries.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{what} left {left:?}");
    }
    hub.kill();
}

/// A hub serving under a file-size limit its store's files outgrow (systemd's `LimitFSIZE`):
/// devices are told the hub is full and when to come back (503, `Retry-After`), as on a full
/// disk, and the log says which of the two it may be, not a bare storage error (500).
#[test]
fn a_hub_past_its_file_size_limit_answers_as_a_full_one() {
    let Some(dir) = embedded() else {
        return;
    };
    let (mut hub, mut monitor) = hub_with_a_monitor(dir.path());
    hub.stop();
    let data = dir.path().join("hub");
    let largest = ["hub.db", "hub.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(data.join(f)).ok())
        .map(|m| m.len())
        .max()
        .unwrap();
    let log = dir.path().join("limited.log");
    let mut serving = Command::new("bash")
        .args([
            "-c",
            &format!("ulimit -f {}; exec \"$0\" \"$@\"", largest / 1024 + 48),
            BIN,
        ])
        .args([
            "serve",
            "--data",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(serving.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let url = line
        .trim()
        .trim_start_matches("vigie hub listening on ")
        .to_string();
    record_incompressible_workplaces(&mut monitor, 0x2545_f491_4f6c_dd1d);
    let request = monitor
        .store
        .hub_sync_request(&vigie_core::sync::SyncOptions::default())
        .unwrap();
    let (status, retry, body) = answer_to(&url, &monitor, &request);
    let _ = serving.kill();
    let _ = serving.wait();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status, 503, "{body}\n{logged}");
    assert!(retry, "no Retry-After");
    assert!(logged.contains("file-size limit"), "{logged}");
}

/// A hub file cut short is said damaged, naming it, with what to do (restore a backup), not as
/// a storage error; an overwritten first page, which SQLCipher cannot tell from a wrong key,
/// is said to be either.
#[test]
fn a_damaged_hub_file_is_named_and_a_restore_advised() {
    let Some(dir) = embedded() else {
        return;
    };
    let data = dir.path().join("hub");
    let user = add_user(&data, "Moniteur", Role::CommunityMonitor, &[C01]);
    enrol(&data, user);
    let list = || vigie_output(&["user", "list", "--data", data.to_str().unwrap()]);
    assert!(list().status.success());
    for name in ["hub.db", "devices.db"] {
        let file = data.join(name);
        let whole = std::fs::read(&file).unwrap();
        std::fs::write(&file, &whole[..whole.len() / 2]).unwrap();
        let out = list();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            said.contains(&format!("{name} is damaged")) && said.contains("backup"),
            "{name}: {said}"
        );
        let mut overwritten = whole.clone();
        overwritten[100..104].copy_from_slice(&[0xff; 4]);
        std::fs::write(&file, &overwritten).unwrap();
        let said = String::from_utf8_lossy(&list().stderr).into_owned();
        assert!(
            said.contains("wrong key") && said.contains("damaged"),
            "{name}: {said}"
        );
        std::fs::write(&file, &whole).unwrap();
        assert!(list().status.success());
    }
}

#[test]
fn a_postgres_database_without_a_hub_or_out_of_reach_is_said_at_once() {
    let Some(server) = postgres_server() else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let data_arg = data.to_str().unwrap();
    let base = server.trim_end_matches("/postgres").to_string();
    let quick = Duration::from_secs(5);

    // An empty database: no hub there, and neither tables nor a key are made.
    let empty = fresh_database("empty");
    for args in [
        vec!["user", "list"],
        vec!["device", "list"],
        vec!["reference", "list"],
        vec!["quarantine", "list"],
    ] {
        let mut args = args;
        args.extend(["--data", data_arg, "--database", &empty]);
        let err = fails_within(&args, &[], quick);
        assert!(err.contains("no hub in PostgreSQL database"), "{err}");
        assert!(
            !err.contains("vigie-data") && !err.contains(data_arg),
            "{err}"
        );
    }
    assert!(!dir.path().join("hub-key").exists(), "a key was made");
    let mut client = postgres::Client::connect(&empty, postgres::NoTls).unwrap();
    let tables: bool = client
        .query_one("SELECT to_regclass('vigie_meta') IS NOT NULL", &[])
        .unwrap()
        .get(0);
    assert!(!tables, "tables were made in an empty database");
    drop(client);
    // `user add` makes the hub; then it is found.
    vigie(&[
        "user",
        "add",
        "--data",
        data_arg,
        "--database",
        &empty,
        "--name",
        "Staff",
        "--role",
        "administrator",
    ]);
    assert!(vigie(&["user", "list", "--data", data_arg, "--database", &empty]).contains("Staff"));
    // Its key missing: the error names the database, not a data directory.
    std::fs::remove_file(dir.path().join("hub-key").join("hub.key")).unwrap();
    let err = fails_within(
        &["user", "list", "--data", data_arg, "--database", &empty],
        &[],
        quick,
    );
    assert!(
        err.contains("the hub in PostgreSQL database") && err.contains("key was not found"),
        "{err}"
    );
    drop_database(&empty);

    // No such database, a refused user, a closed port: the reason, at once, and no password.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let port = base.rsplit(':').next().unwrap().to_string();
    for (url, reason) in [
        (
            format!("{base}/vigie_no_such_database"),
            "no PostgreSQL database vigie_no_such_database",
        ),
        (
            format!("postgres://nobody_here:pw-s3cret@127.0.0.1:{port}/postgres"),
            "authentication failed",
        ),
        (
            format!("postgres://vigie:pw-s3cret@127.0.0.1:{closed}/postgres"),
            &format!("cannot reach 127.0.0.1:{closed}") as &str,
        ),
    ] {
        for command in [&["user", "list"][..], &["serve", "--listen", "127.0.0.1:0"]] {
            let mut args = command.to_vec();
            args.extend(["--data", data_arg, "--database", &url]);
            let err = fails_within(&args, &[], quick);
            assert!(err.contains(reason), "{args:?}: {err}");
            assert!(!err.contains("s3cret"), "{err}");
            assert!(!err.contains("r2d2") && !err.contains("timed out"), "{err}");
        }
    }
}

/// A PostgreSQL database that goes out of reach while the hub serves (down, restarting, its
/// link cut): devices are answered 503 with a time to come back, as for a full disk, not a
/// 500 that reads as a fault of the hub; once it answers again, the hub serves without a
/// restart and nothing was lost.
#[test]
fn a_postgres_database_out_of_reach_while_serving_is_answered_503_then_taken_back() {
    let Some(_) = postgres_server() else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let (mut hub, mut monitor) = hub_with_a_monitor(dir.path());
    monitor
        .store
        .create(&workplace(area(C01), "Plantation Aké"))
        .unwrap();
    let url = hub_database(&hub.data).unwrap();
    set_reachable(&url, false);
    let (status, retry, body) = sync_answer(&hub, &mut monitor);
    // A load balancer's health check says so meanwhile.
    let unhealthy = health(&hub.url);
    set_reachable(&url, true);
    assert!(unhealthy.is_err(), "{unhealthy:?}");
    assert_eq!(health(&hub.url), Ok("ok".to_string()));
    assert_eq!(status, 503, "{body}\n{}", hub.log_tail(20));
    assert!(retry, "no Retry-After");
    assert!(body.contains("cannot be reached"), "{body}");
    assert!(
        hub.log_tail(50).contains("cannot be reached"),
        "{}",
        hub.log_tail(20)
    );
    let summary = monitor.sync(&hub.url).unwrap();
    assert_eq!((summary.accepted, summary.pending), (1, 0), "{summary:?}");
    hub.stop();
}

/// A database emptied under a running hub (dropped and made again under its name, a
/// `pg_restore --clean` running) answered every sync 500 "hub error" while the health check
/// said ok: a load balancer kept sending devices to it. Now unhealthy and answered 503 with a
/// time to come back, the log saying the hub's tables are not there; served again once back.
#[test]
fn a_postgres_database_without_the_hubs_tables_is_unhealthy_and_answered_503() {
    let Some(_) = postgres_server() else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let (mut hub, mut monitor) = hub_with_a_monitor(dir.path());
    monitor
        .store
        .create(&workplace(area(C01), "Plantation Aké"))
        .unwrap();
    let url = hub_database(&hub.data).unwrap();
    set_tables_gone(&url, true);
    let unhealthy = health(&hub.url);
    let (status, retry, body) = sync_answer(&hub, &mut monitor);
    set_tables_gone(&url, false);
    assert!(unhealthy.is_err(), "{unhealthy:?}");
    assert_eq!(status, 503, "{body}\n{}", hub.log_tail(20));
    assert!(retry, "no Retry-After");
    assert!(
        hub.log_tail(50).contains("none of the hub's tables"),
        "{}",
        hub.log_tail(20)
    );
    assert_eq!(health(&hub.url), Ok("ok".to_string()));
    let summary = monitor.sync(&hub.url).unwrap();
    assert_eq!((summary.accepted, summary.pending), (1, 0), "{summary:?}");
    hub.stop();
}

/// A hub process frozen (a machine swapping, a paused VM, a link cut) while it held the
/// change-order lock in a transaction stopped every write of every process on the database,
/// silently, until the server's keepalive gave up (two hours). The hub's sessions run under
/// bounds: a push waiting for the lock is answered 503 and logged, and the frozen holder's
/// transaction is ended by the server, after which devices push again. (Short bounds here:
/// the lock wait through the database URL's options, which the hub keeps.)
#[test]
fn a_postgres_lock_held_by_a_frozen_process_holds_no_write_back_for_long() {
    let Some(_) = postgres_server() else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let (mut hub, mut monitor) = hub_with_a_monitor(dir.path());
    let url = hub_database(&hub.data).unwrap();
    hub.stop();
    hub.database = Some(format!("{url}?options=-c%20lock_timeout%3D1s"));
    hub.restart();
    // Another hub process's session (the same bounds), frozen inside its transaction, the
    // change-order lock held.
    let bounded = hub.database.clone().unwrap();
    let mut frozen = postgres::Client::connect(&bounded, postgres::NoTls).unwrap();
    let mut holding = frozen.transaction().unwrap();
    // As the hub takes it, the transaction bounded (here 3 s, for the test's sake: 30 s).
    holding
        .execute(
            "SELECT set_config('idle_in_transaction_session_timeout', '3s', true)",
            &[],
        )
        .unwrap();
    holding
        .execute("SELECT pg_advisory_xact_lock(8532464671401403761)", &[])
        .unwrap();
    monitor
        .store
        .create(&workplace(area(C01), "Plantation Aké"))
        .unwrap();
    let started = Instant::now();
    let (status, retry, _) = sync_answer(&hub, &mut monitor);
    assert_eq!(status, 503, "{}", hub.log_tail(20));
    assert!(retry, "no Retry-After");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(
        hub.log_tail(50).contains("lock_timeout"),
        "{}",
        hub.log_tail(20)
    );
    // The server ends the frozen transaction; the device's next sync goes through.
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        holding.execute("SELECT 1", &[]).is_err(),
        "the session was ended"
    );
    drop(holding);
    let summary = monitor.sync(&hub.url).unwrap();
    assert_eq!((summary.accepted, summary.pending), (1, 0), "{summary:?}");
    hub.stop();
}

/// A failover that leaves the hub on a standby (or a database set read-only): every sync was a
/// 500 "hub error" and health said ok, the log giving a bare code. It is a database out of
/// reach for writes: health 503 (the load balancer sends devices elsewhere), syncs 503 with a
/// time to come back, the log saying why; writes again once the database takes them.
#[test]
fn a_postgres_database_that_takes_no_write_is_answered_503_then_taken_back() {
    let Some(_) = postgres_server() else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let (mut hub, mut monitor) = hub_with_a_monitor(dir.path());
    monitor
        .store
        .create(&workplace(area(C01), "Plantation Aké"))
        .unwrap();
    let url = hub_database(&hub.data).unwrap();
    set_read_only(&url, true);
    let unhealthy = health(&hub.url);
    let (status, retry, _) = sync_answer(&hub, &mut monitor);
    set_read_only(&url, false);
    assert!(unhealthy.is_err(), "{unhealthy:?}");
    assert_eq!(status, 503, "{}", hub.log_tail(20));
    assert!(retry, "no Retry-After");
    assert!(hub.log_tail(50).contains("25006"), "{}", hub.log_tail(20));
    assert_eq!(health(&hub.url), Ok("ok".to_string()));
    let summary = monitor.sync(&hub.url).unwrap();
    assert_eq!((summary.accepted, summary.pending), (1, 0), "{summary:?}");
    hub.stop();
}

/// A hub on the suite's database with a monitor's phone enrolled and synced once.
fn hub_with_a_monitor(dir: &Path) -> (Hub, Device) {
    let data = dir.join("hub");
    let hub = Hub::start(&data);
    let mut monitor = Device::enrol(dir, &data, "monitor", Role::CommunityMonitor, &[C01], 7);
    monitor.sync(&hub.url).unwrap();
    (hub, monitor)
}

/// The hub's answer to the device's next sync request, sent as is: its status, whether it
/// says when to come back, and its body.
fn sync_answer(hub: &Hub, device: &mut Device) -> (u16, bool, String) {
    let request = device
        .store
        .hub_sync_request(&vigie_core::sync::SyncOptions::default())
        .unwrap();
    answer_to(&hub.url, device, &request)
}

/// The answer of the hub at `url` to `request`, sent as `device`'s (`sync_answer`).
fn answer_to(url: &str, device: &Device, request: &[u8]) -> (u16, bool, String) {
    let mut response = agent()
        .post(format!("{url}/v1/sync"))
        .header("Authorization", &format!("Bearer {}", device.token_text))
        .header("Content-Type", "application/octet-stream")
        .send(request)
        .unwrap();
    let status = response.status().as_u16();
    let retry = response.headers().get("retry-after").is_some();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    (status, retry, body)
}

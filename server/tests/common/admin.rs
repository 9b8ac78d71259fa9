//! Administration through the hub's command line: users, devices, reference data.

use super::*;

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

/// What a command said on stderr.
pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `vigie backup --data <data> --out <out>`, which must succeed; returns what it printed.
pub fn backup(data: &Path, out: &Path) -> String {
    vigie(&backup_args(data, out))
}

/// Puts the files of a backup in `from` in place of the hub's in `data`, as README says to
/// restore an embedded hub (its journals removed, so that none is replayed over the copy).
pub fn restore_backup(data: &Path, from: &Path) {
    for name in ["hub.db", "devices.db"] {
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(data.join(format!("{name}{suffix}")));
        }
        std::fs::copy(from.join(name), data.join(name)).expect("a backup's file");
    }
}

/// `vigie backup --data <data> --out <out>`, which may be refused.
pub fn backup_output(data: &Path, out: &Path) -> std::process::Output {
    vigie_output(&backup_args(data, out))
}

fn backup_args<'a>(data: &'a Path, out: &'a Path) -> [&'a str; 5] {
    let path = |p: &'a Path| p.to_str().expect("utf-8 path");
    ["backup", "--data", path(data), "--out", path(out)]
}

pub fn role_arg(role: Role) -> &'static str {
    match role {
        Role::Inspector => "inspector",
        Role::CommunityMonitor => "community-monitor",
        Role::Supervisor => "supervisor",
        Role::Administrator => "administrator",
    }
}

/// `vigie user add`: returns the new user's id. Its areas must be named by a published tree:
/// the sample tree is published first (again the same version on a hub that has it).
pub fn add_user(data: &Path, name: &str, role: Role, areas: &[&str]) -> Uuid {
    if !areas.is_empty() {
        super::reference::publish(data, &[super::reference::SAMPLE_AREAS]);
    }
    let out = try_add_user(data, name, role, areas);
    assert!(
        out.status.success(),
        "vigie user add failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = String::from_utf8(out.stdout).expect("utf-8 output");
    Uuid::try_parse(out.trim()).unwrap_or_else(|_| panic!("user add printed {out:?}"))
}

/// `vigie user add` as it is, with no tree published first: its output, failed or not.
pub fn try_add_user(data: &Path, name: &str, role: Role, areas: &[&str]) -> std::process::Output {
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
    vigie_output(&args)
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

/// Runs `sql` on the hub's console tables (the embedded registry, opened with the hub's key
/// file, or the PostgreSQL database): how a test makes the audit log lose an entry, as a
/// process stopped between an action and its entry does.
pub fn on_console_tables(data: &Path, sql: &str) {
    match hub_database(data) {
        Some(url) => postgres::Client::connect(&url, postgres::NoTls)
            .expect("connect")
            .batch_execute(sql)
            .expect("the statements"),
        None => {
            let key = std::fs::read_to_string(vigie_server::hub_key::default_key_file(data))
                .expect("the hub's key file");
            let hex = key.split_whitespace().nth(1).expect("the key");
            rusqlite::Connection::open(data.join("devices.db"))
                .expect("the registry")
                .execute_batch(&format!("PRAGMA key = \"x'{hex}'\"; {sql}"))
                .expect("the statements");
        }
    }
}

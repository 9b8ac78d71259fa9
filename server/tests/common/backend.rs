//! The hub's storage: the embedded store or a PostgreSQL database of its own.

use super::*;

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

/// Lets the database at `url` be reached, or not: refused connections and its sessions ended
/// (a database down or restarting, as the hubs on it see it), on it alone.
pub fn set_reachable(url: &str, allowed: bool) {
    let (_, name) = url.rsplit_once('/').expect("a database URL");
    let mut client = postgres::Client::connect(postgres_server_always(), postgres::NoTls)
        .expect("connect to PostgreSQL");
    client
        .batch_execute(&format!(
            "ALTER DATABASE {name} ALLOW_CONNECTIONS {allowed};
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = '{name}' AND pid <> pg_backend_pid();"
        ))
        .unwrap_or_else(|e| panic!("reach database {name}: {e}"));
}

/// Takes every table of the database at `url` out of its sessions' sight, or gives them back
/// (a database dropped and made again empty under the hubs, a `pg_restore --clean` running):
/// its schema renamed, an empty one in its place.
pub fn set_tables_gone(url: &str, gone: bool) {
    let mut client =
        postgres::Client::connect(url, postgres::NoTls).expect("connect to the hub's database");
    let sql = if gone {
        "ALTER SCHEMA public RENAME TO public_away; CREATE SCHEMA public;"
    } else {
        "DROP SCHEMA public; ALTER SCHEMA public_away RENAME TO public;"
    };
    client
        .batch_execute(sql)
        .unwrap_or_else(|e| panic!("tables of {url}: {e}"));
}

/// Makes the database at `url` take no write, or writes again (a failover left the hubs on a
/// standby, then the primary is back), its sessions ended so that the hubs' new ones see it.
pub fn set_read_only(url: &str, read_only: bool) {
    let (_, name) = url.rsplit_once('/').expect("a database URL");
    let mut client = postgres::Client::connect(postgres_server_always(), postgres::NoTls)
        .expect("connect to PostgreSQL");
    client
        .batch_execute(&format!(
            "ALTER DATABASE {name} SET default_transaction_read_only = {read_only};
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = '{name}' AND pid <> pg_backend_pid();"
        ))
        .unwrap_or_else(|e| panic!("read-only database {name}: {e}"));
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

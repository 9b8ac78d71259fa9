//! The real `vigie` binary as the hub of the `busy-hub` and `hostile` benches: administered
//! through its own commands and served by `vigie serve`, so that the figures are those of the
//! binary an operator runs (`--hub-bin` measures another build of it, an older one included).

use crate::BoxResult;
use crate::hub_load::{BenchDatabase, postgres_server};
use crate::peak_rss_mb_of;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use uuid::Uuid;
use vigie_core::{Encryption, Store, StoreConfig};
use vigie_server::auth::Token;

/// Which storage the hub runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// `both` (the default), `sqlite` or `postgres`.
    pub fn parse(value: Option<&str>) -> Result<Vec<Backend>, String> {
        match value {
            None | Some("both") => Ok(vec![Backend::Sqlite, Backend::Postgres]),
            Some("sqlite") => Ok(vec![Backend::Sqlite]),
            Some("postgres") => Ok(vec![Backend::Postgres]),
            Some(other) => Err(format!("invalid value for --backend: {other}")),
        }
    }
}

/// The `vigie` binary to run: `--hub-bin`, else the one built beside this bench.
pub fn hub_bin(flag: Option<String>) -> BoxResult<PathBuf> {
    let path = match flag {
        Some(path) => PathBuf::from(path),
        None => std::env::current_exe()?.with_file_name("vigie"),
    };
    if !path.is_file() {
        return Err(format!(
            "no hub binary at {}: build it first (cargo build --release -p vigie-server --bin \
             vigie) or name one with --hub-bin",
            path.display()
        )
        .into());
    }
    Ok(path)
}

/// A hub's data: a directory, and a PostgreSQL database of its own on that backend.
pub struct HubData {
    pub bin: PathBuf,
    pub dir: tempfile::TempDir,
    pub database: Option<BenchDatabase>,
}

impl HubData {
    pub fn new(bin: &Path, backend: Backend, postgres: Option<&str>) -> BoxResult<HubData> {
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let server = match postgres {
                    Some(url) => url.to_string(),
                    None => postgres_server()?,
                };
                Some(BenchDatabase::create(&server)?)
            }
        };
        let hub = HubData {
            bin: bin.to_path_buf(),
            dir: tempfile::tempdir()?,
            database,
        };
        // A hub serves a country's records only once its area tree is published.
        hub.admin(&[
            "reference",
            "publish",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../reference/areas-CI.json"),
        ])?;
        Ok(hub)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("hub")
    }

    fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--data".to_string(),
            self.data().to_string_lossy().to_string(),
        ];
        if let Some(db) = &self.database {
            args.extend(["--database".to_string(), db.url.clone()]);
        }
        args
    }

    /// Runs `vigie <args>` on this hub's data; its output.
    pub fn admin(&self, args: &[&str]) -> BoxResult<String> {
        let out = Command::new(&self.bin)
            .args(args)
            .args(self.args())
            .env("RUST_LOG", "warn")
            .stderr(Stdio::piped())
            .output()?;
        if !out.status.success() {
            return Err(format!(
                "vigie {args:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )
            .into());
        }
        Ok(String::from_utf8(out.stdout)?.trim().to_string())
    }

    /// A new user and a device of theirs: the device's token.
    pub fn user_with_device(&self, name: &str, role: &str, area: &str) -> BoxResult<Token> {
        let user: Uuid = self
            .admin(&[
                "user", "add", "--name", name, "--role", role, "--area", area,
            ])?
            .parse()?;
        self.device_of(user)
    }

    pub fn device_of(&self, user: Uuid) -> BoxResult<Token> {
        Ok(Token::parse(&self.admin(&[
            "device",
            "enrol",
            "--user",
            &user.to_string(),
        ])?)?)
    }

    /// Starts `vigie serve` on this data; its log goes to `<dir>/hub.log`.
    pub fn serve(&self) -> BoxResult<RealHub> {
        self.serve_with(&[])
    }

    /// `serve`, with more arguments of `vigie serve`.
    pub fn serve_with(&self, extra: &[&str]) -> BoxResult<RealHub> {
        let log = std::fs::File::create(self.dir.path().join("hub.log"))?;
        let mut child = Command::new(&self.bin)
            .arg("serve")
            .args(self.args())
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().ok_or("hub has no stdout")?).read_line(&mut line)?;
        let Some(url) = line.trim().strip_prefix("vigie hub listening on ") else {
            let _ = child.kill();
            return Err(format!("unexpected hub output: {line:?}").into());
        };
        Ok(RealHub {
            url: url.to_string(),
            child,
        })
    }

    /// Drops the PostgreSQL database (once the hub stopped).
    pub fn finish(self) -> BoxResult<()> {
        if let Some(db) = self.database {
            db.drop_it()?;
        }
        Ok(())
    }
}

/// A running `vigie serve`, killed when dropped.
pub struct RealHub {
    pub url: String,
    child: Child,
}

impl RealHub {
    pub fn addr(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// The hub's peak resident memory so far (VmHWM), in MB.
    pub fn peak_rss_mb(&self) -> f64 {
        peak_rss_mb_of(self.child.id()).unwrap_or(0.0)
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for RealHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A device's own encrypted store, opened with the ids of its token.
pub fn device_store(dir: &Path, name: &str, token: &Token) -> BoxResult<Store> {
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(token.device.as_bytes());
    Ok(Store::open(
        StoreConfig::new(
            dir.join(format!("{name}.db")),
            Encryption::Key(key),
            token.user,
        )
        .device(token.device),
    )?)
}

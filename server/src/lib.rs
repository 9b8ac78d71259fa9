//! Vigie's hub: the store supervisors' devices and field phones sync with.
//!
//! The hub holds records in the core's own store (embedded SQLite by default) or in PostgreSQL,
//! and answers sync requests with the core's own engine; this crate adds only the PostgreSQL
//! backend, enrolment, authentication and HTTP.

pub mod area_warnings;
pub mod auth;
pub mod backend;
pub mod backup;
pub mod client;
pub mod console;
pub mod http;
pub mod hub_key;
pub mod irreversible;
mod listener;
pub mod logging;
pub mod postgres;
pub mod tls;

use auth::{AuthError, Registry};
use backend::{Backend, Embedded};
use hub_key::{KeyError, KeyOptions};
use std::path::Path;
use uuid::Uuid;
use vigie_core::sync::HubLimits;
use vigie_core::{Encryption, Store, StoreConfig, StoreRole};

/// Bounds the allocator's arenas in a hub's process, before its threads start. glibc gives
/// each thread that allocates beside others an arena of its own, up to eight a core, and each
/// keeps the most it ever held: the workers judging valid records as large as the bounds allow
/// side by side took the hub past 250 MB, where one arena a core held it under 150 MB, its
/// honest devices' syncs no slower (`vigie-bench hostile`). An operator's `MALLOC_ARENA_MAX`
/// is left as it is.
pub fn bound_allocator_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let arenas = libc::c_int::try_from(cores.max(2)).unwrap_or(libc::c_int::MAX);
        // SAFETY: sets one of the allocator's parameters; called before the hub's threads start.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HubOpenError {
    #[error(transparent)]
    Store(#[from] vigie_core::Error),
    #[error(transparent)]
    Registry(#[from] AuthError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("cannot start the hub: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Postgres(#[from] postgres::ConnectError),
    /// A command of a newer version than the `vigie serve` running on the same data directory,
    /// which would bring the hub's files to its schema under the running server.
    #[error(
        "a vigie serve of an earlier version runs on {0}: this version would upgrade the hub's \
         files under it, and what it writes meanwhile would stay as its version wrote it; stop \
         it, start this version's vigie serve (its first start upgrades the files), then run \
         the command again"
    )]
    UpgradeBesideServe(std::path::PathBuf),
    /// A file of the hub that SQLite finds malformed (cut short, overwritten).
    #[error(
        "{0} is damaged (cut short or overwritten): the hub cannot open it; stop every vigie \
         command on this data directory and restore the hub's files from a backup (README, \
         \"Backups and restore\")"
    )]
    Damaged(std::path::PathBuf),
    /// A command that works on an existing hub, given a directory that holds none (a mistyped
    /// `--data`): answering from a new empty hub would say that every user and record is gone.
    #[error(
        "no hub in {0}: check --data (a new hub is made by `vigie serve`, `vigie reference \
         publish` or `vigie user add` of an administrator)"
    )]
    NoHub(std::path::PathBuf),
    /// `--data` names something that is not a directory (a file, a device): nothing is made.
    #[error("{0} is not a directory: --data names the hub's data directory")]
    NotADirectory(std::path::PathBuf),
    /// No hub in the data directory, but the key found for it already served one that erased
    /// records or revoked devices: an unmounted volume or a mistyped `--data` would otherwise
    /// start an empty hub under the old key, where the real files are to come back.
    #[error(
        "no hub in {data}, but its key belongs to a hub that erased records or revoked devices \
         (its journal {journal} says so): restore that hub's files into {data}, or give a new \
         hub a key of its own (--key-file, or move the key's directory aside)"
    )]
    KeyOfAnotherHub {
        data: std::path::PathBuf,
        journal: std::path::PathBuf,
    },
    /// One of the embedded hub's files is missing (a partial restore, a deleted file): a hub
    /// opened on the other alone would answer that every user, device or record is gone, and
    /// would forget its tombstones.
    #[error(
        "the hub in {data} has no {missing}: restore it from the same backup as the hub's other \
         files (a new hub that never started may instead be removed whole)"
    )]
    Incomplete {
        data: std::path::PathBuf,
        missing: &'static str,
    },
    /// The data directory, or one of the hub's files in it, cannot be read or written by the
    /// user running `vigie` (a directory made by another user, a read-only copy or file
    /// system): SQLite needs to write there even for a command that only reads.
    #[error(
        "{} {} cannot be {needed} by this user ({reason}): the hub writes to its data \
         directory and its files even to read; give the user running vigie read and write \
         access to them (or run vigie as their owner)",
        match file { Some(_) => "the hub's file", None => "the data directory" },
        match file { Some(name) => data.join(name).display().to_string(), None => data.display().to_string() }
    )]
    Access {
        data: std::path::PathBuf,
        /// The file of the data directory at fault, if not the directory itself.
        file: Option<String>,
        needed: &'static str,
        reason: String,
    },
    /// Another `vigie serve` holds the data directory: two processes serving one embedded hub
    /// would make each other's writes fail ("database is locked").
    #[error(
        "another `vigie serve` is running on {0}: one process serves an embedded hub (stop \
         it first; the other vigie commands work beside it, and several processes serve one \
         PostgreSQL hub)"
    )]
    Served(std::path::PathBuf),
}

/// The hub's own device and user ids: the hub writes records (users) under them.
pub(crate) const HUB_ADMIN: Uuid = vigie_core::sync::HUB_ADMIN;

/// The author of the changes the hub makes as its administrator (users, reference data,
/// records filed again).
pub(crate) const ADMIN_AUTHOR: vigie_core::ChangeAuthor = vigie_core::sync::ADMIN_AUTHOR;

/// The user as the core's rules see them when they act through the hub itself (the console,
/// an export made for them): the scope their devices sync with, on the hub's own device.
pub fn acting_as(user: &vigie_core::User) -> vigie_core::sync::Principal {
    vigie_core::sync::Principal {
        device: HUB_ADMIN,
        user: user.id,
        role: user.role,
        areas: user.areas.clone(),
    }
}

/// The embedded hub's files in its data directory: its records and its device registry.
const HUB_FILES: [&str; 2] = ["hub.db", "devices.db"];

/// How the embedded hub in `data` is encrypted: its key found (or, for a new hub, made) as
/// `key` says. A key given for a plain hub, or no key for an encrypted one, is named as such
/// before anything is opened.
pub fn hub_encryption(data: &Path, key: &KeyOptions) -> Result<Encryption, HubOpenError> {
    let written = written_hub_files(data);
    // What the files are decides before any key is looked for: an unencrypted hub is told so,
    // not that its key is missing.
    for file in &written {
        match (key.unencrypted, hub_key::is_plain_sqlite(file)) {
            (false, true) => return Err(KeyError::HubUnencrypted.into()),
            (true, false) => return Err(KeyError::HubEncrypted.into()),
            _ => {}
        }
    }
    Ok(match key.resolve(data, !written.is_empty())? {
        Some(key) => Encryption::Key(key.0),
        None => Encryption::Unencrypted,
    })
}

/// Whether `data` holds an embedded hub; `HubOpenError::NoHub` if it does not.
pub fn existing_hub(data: &Path) -> Result<(), HubOpenError> {
    readable(data)?;
    if written_hub_files(data).is_empty() {
        return Err(HubOpenError::NoHub(data.to_path_buf()));
    }
    whole_hub(data)
}

/// Whether the embedded hub in `data` is whole: either none of its files holds anything (a new
/// hub), or each does.
fn whole_hub(data: &Path) -> Result<(), HubOpenError> {
    readable(data)?;
    let written = written_hub_files(data);
    if written.is_empty() {
        return Ok(());
    }
    match HUB_FILES
        .iter()
        .find(|name| !written.contains(&data.join(name)))
    {
        Some(missing) => Err(HubOpenError::Incomplete {
            data: data.to_path_buf(),
            missing,
        }),
        None => Ok(()),
    }
}

/// Refuses to make a new hub in `data` under a key whose journal holds actions of another.
fn key_of_no_other_hub(data: &Path, key: &KeyOptions) -> Result<(), HubOpenError> {
    match irreversible::journal_with_actions(data, key) {
        Some(journal) => Err(HubOpenError::KeyOfAnotherHub {
            data: data.to_path_buf(),
            journal,
        }),
        None => Ok(()),
    }
}

/// `--data` naming something that exists and is no directory (a file, a device): nothing is
/// made, nor read, there.
fn a_directory_if_any(data: &Path) -> Result<(), HubOpenError> {
    if data.metadata().is_ok_and(|m| !m.is_dir()) {
        return Err(HubOpenError::NotADirectory(data.to_path_buf()));
    }
    Ok(())
}

/// A data directory that exists but that this user may not list or enter is said so, rather
/// than taken for one that holds no hub.
fn readable(data: &Path) -> Result<(), HubOpenError> {
    a_directory_if_any(data)?;
    match std::fs::read_dir(data).and_then(|_| data.join("hub.db").try_exists()) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(HubOpenError::Access {
            data: data.to_path_buf(),
            file: None,
            needed: "read",
            reason: e.to_string(),
        }),
        _ => Ok(()),
    }
}

/// Whether this user may read and write `path` (and enter it, a directory) (`access(2)`, which
/// also tells a read-only file system): the reason if not.
fn refused_access(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
        let mode = match path.is_dir() {
            true => libc::R_OK | libc::W_OK | libc::X_OK,
            false => libc::R_OK | libc::W_OK,
        };
        // SAFETY: a valid NUL-terminated path; access reads it and nothing else.
        let refused = unsafe { libc::access(name.as_ptr(), mode) } != 0;
        refused.then(|| std::io::Error::last_os_error().to_string())
    }
    #[cfg(not(unix))]
    {
        let metadata = path.metadata().ok()?;
        metadata
            .permissions()
            .readonly()
            .then(|| "read-only".to_string())
    }
}

/// Why the embedded hub in `data` could not be opened, when it is the data directory's or its
/// files' permissions (SQLite itself says "unable to open database file" or "attempt to write a
/// readonly database"): `None` if they allow the hub.
fn access_problem(data: &Path) -> Option<HubOpenError> {
    if !data.exists() {
        return None;
    }
    if let Some(reason) = refused_access(data) {
        return Some(HubOpenError::Access {
            data: data.to_path_buf(),
            file: None,
            needed: "written",
            reason,
        });
    }
    HUB_FILES
        .iter()
        .flat_map(|name| ["", "-wal", "-shm"].map(|end| format!("{name}{end}")))
        .filter(|name| data.join(name).exists())
        .find_map(|name| {
            refused_access(&data.join(&name)).map(|reason| HubOpenError::Access {
                data: data.to_path_buf(),
                file: Some(name),
                needed: "written",
                reason,
            })
        })
}

/// Makes the data directory if missing: a directory that cannot be made says why, and where.
fn make_data_dir(data: &Path) -> Result<(), HubOpenError> {
    a_directory_if_any(data)?;
    // `hub/.` is `hub`: `create_dir_all` takes its parent for `.` and never makes `hub`.
    let path: std::path::PathBuf = data.components().collect();
    // Owner-only, as the key's directory: an unencrypted hub's files are no one else's to read.
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(&path)
        .map_err(|e| match access_problem(data) {
            Some(problem) => problem,
            None => HubOpenError::Access {
                data: data.to_path_buf(),
                file: None,
                needed: "made",
                reason: e.to_string(),
            },
        })
}

/// What `vigie serve` holds for as long as it serves the embedded hub in a data directory
/// (an exclusive lock on its file `serve.lock`): a second `vigie serve` on the same directory
/// is refused (`HubOpenError::Served`). The other commands do not take it: they work beside a
/// running hub. The lock ends with the process, however it ends.
pub struct ServeLock {
    _file: std::fs::File,
}

/// The lock file's name in the data directory.
pub const SERVE_LOCK: &str = "serve.lock";

/// Takes the data directory `data` (made if missing) for `vigie serve` (`ServeLock`).
pub fn lock_for_serving(data: &Path) -> Result<ServeLock, HubOpenError> {
    make_data_dir(data)?;
    let file = lock_file(data, SERVE_LOCK)?;
    match file.try_lock() {
        Ok(()) => Ok(ServeLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(HubOpenError::Served(data.to_path_buf())),
        Err(std::fs::TryLockError::Error(e)) => Err(HubOpenError::Access {
            data: data.to_path_buf(),
            file: Some(SERVE_LOCK.into()),
            needed: "locked",
            reason: e.to_string(),
        }),
    }
}

/// The lock file in the data directory that one process at a time holds while it opens the
/// embedded hub (`Database::open_as`).
pub const OPEN_LOCK: &str = "open.lock";

/// Waits for, and takes, the data directory `data` for opening the embedded hub: held until
/// the returned file is dropped.
fn lock_for_opening(data: &Path) -> Result<std::fs::File, HubOpenError> {
    let file = lock_file(data, OPEN_LOCK)?;
    file.lock()
        .map_err(|e| lock_file_problem(data, OPEN_LOCK, "locked", e))?;
    Ok(file)
}

/// The lock file `name` of the data directory `data`, opened (made if missing).
fn lock_file(data: &Path, name: &str) -> Result<std::fs::File, HubOpenError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(data.join(name))
        .map_err(|e| lock_file_problem(data, name, "opened", e))
}

/// Why the lock file `name` could not be `needed`: the data directory's access, else `e`.
fn lock_file_problem(
    data: &Path,
    name: &str,
    needed: &'static str,
    e: std::io::Error,
) -> HubOpenError {
    access_problem(data).unwrap_or_else(|| HubOpenError::Access {
        data: data.to_path_buf(),
        file: Some(name.into()),
        needed,
        reason: e.to_string(),
    })
}

/// A file of `data` refused for its earlier schema, which a server holding the directory serves.
fn withheld_beside_serve(data: &Path, e: HubOpenError) -> HubOpenError {
    match e {
        HubOpenError::Store(vigie_core::Error::UpgradeWithheld { .. })
        | HubOpenError::Registry(AuthError::UpgradeWithheld) => {
            HubOpenError::UpgradeBesideServe(data.to_path_buf())
        }
        e => e,
    }
}

/// Whether a `vigie serve` holds the data directory `data` now (`lock_for_serving`), looked at
/// without taking it, nor making its lock file.
fn served_now(data: &Path) -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(data.join(SERVE_LOCK))
        .is_ok_and(|file| matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock)))
}

/// The embedded hub's files in `data` that hold something.
fn written_hub_files(data: &Path) -> Vec<std::path::PathBuf> {
    HUB_FILES
        .iter()
        .map(|name| data.join(name))
        .filter(|file| file.metadata().is_ok_and(|m| m.len() > 0))
        .collect()
}

/// Opens (creating if needed) the hub's record store in `data`.
/// A command's opening: not upgraded under a running server (`Database::open`).
pub fn open_store(data: &Path, encryption: Encryption) -> Result<Store, HubOpenError> {
    let upgrade = !served_now(data);
    Ok(open_hub_store(data, encryption, upgrade)
        .map_err(|e| withheld_beside_serve(data, e))?
        .0)
}

/// `open_store`, with when the backup it was restored from was taken (milliseconds since the
/// epoch), the first time it opens after a restore.
fn open_hub_store(
    data: &Path,
    encryption: Encryption,
    upgrade: bool,
) -> Result<(Store, Option<i64>), HubOpenError> {
    make_data_dir(data)?;
    // SQLite opens a file it may not write read-only, without a word: the hub would start,
    // then fail every sync. Said first, naming the file.
    if let Some(problem) = access_problem(data) {
        return Err(problem);
    }
    let mut config =
        StoreConfig::new(data.join("hub.db"), encryption, HUB_ADMIN).role(StoreRole::Hub);
    if !upgrade {
        config = config.without_upgrade();
    }
    let log = log_beside(data, "hub.db");
    let mut store = match Store::open(config) {
        Ok(store) => store,
        Err(vigie_core::Error::WrongKeyOrNotAStore) => {
            return Err(wrong_key(data, "hub.db", log).into());
        }
        Err(vigie_core::Error::Storage(e)) if auth::is_damaged(&e) => {
            return Err(HubOpenError::Damaged(data.join("hub.db")));
        }
        Err(e) => return Err(access_problem(data).unwrap_or(e.into())),
    };
    let opened = store.prepare_incarnation()?;
    if let Some(at_ms) = opened.restored {
        let at = chrono::DateTime::from_timestamp_millis(at_ms)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default();
        tracing::warn!(
            backup_taken = %at,
            "this hub was restored from a backup: every device that synced with it before is \
             told at its next sync, and offers again what it holds (records, photos and \
             documents)"
        );
    }
    if opened.lost_attachments > 0 {
        tracing::warn!(
            files = opened.lost_attachments,
            "photo or document files of this hub are gone or cut short (in \
             hub.db.attachments): they are held as never uploaded, and every device that synced \
             with the hub is told at its next sync, and offers again the photos and documents \
             it captured"
        );
    }
    Ok((store, opened.restored))
}

/// Opens (creating if needed) the hub's device registry in `data`, with the store's key.
pub fn open_registry(data: &Path, encryption: &Encryption) -> Result<Registry, HubOpenError> {
    open_registry_as(data, encryption, true)
}

/// `open_registry`; one of an earlier schema refused rather than upgraded unless `upgrade`.
fn open_registry_as(
    data: &Path,
    encryption: &Encryption,
    upgrade: bool,
) -> Result<Registry, HubOpenError> {
    make_data_dir(data)?;
    let log = log_beside(data, "devices.db");
    match Registry::open_with(&data.join("devices.db"), encryption, upgrade) {
        Ok(registry) => Ok(registry),
        Err(AuthError::WrongKey) => Err(wrong_key(data, "devices.db", log).into()),
        Err(AuthError::Damaged) => Err(HubOpenError::Damaged(data.join("devices.db"))),
        Err(e) => Err(access_problem(data).unwrap_or(e.into())),
    }
}

/// The write-ahead log beside `name` in `data`, if one holds something. Looked at before the
/// file is opened: SQLite may remove the log when the failed connection closes.
fn log_beside(data: &Path, name: &str) -> Option<std::path::PathBuf> {
    let wal = data.join(format!("{name}-wal"));
    wal.metadata().is_ok_and(|m| m.len() > 0).then_some(wal)
}

/// A key that does not open `name` in `data`: said to be wrong, unless a write-ahead log lay
/// beside the file, which may be another moment's.
fn wrong_key(data: &Path, name: &str, log: Option<std::path::PathBuf>) -> KeyError {
    match log {
        Some(wal) => KeyError::WrongOrForeignLog {
            file: data.join(name),
            wal,
        },
        None => KeyError::Wrong,
    }
}

/// Where a hub keeps its data, and how it finds its key: a directory for the embedded store,
/// or a PostgreSQL URL (whose key file is found beside `data` all the same).
#[derive(Clone, Debug)]
pub enum Database {
    Embedded {
        data: std::path::PathBuf,
        key: KeyOptions,
    },
    Postgres {
        url: String,
        connections: u32,
        data: std::path::PathBuf,
        key: KeyOptions,
    },
}

impl Database {
    /// `postgres://…` or `postgresql://…` for PostgreSQL, else the embedded store in `data`.
    pub fn choose(
        database: Option<&str>,
        data: &Path,
        key: KeyOptions,
    ) -> Result<Database, HubOpenError> {
        match database {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Database::Postgres {
                    url: url.to_string(),
                    connections: 16,
                    data: data.to_path_buf(),
                    key,
                })
            }
            Some(_) => Err(postgres::ConnectError::BadUrl.into()),
            None => Ok(Database::Embedded {
                data: data.to_path_buf(),
                key,
            }),
        }
    }

    /// Opens the hub, which must exist already: a data directory without the hub's files
    /// (`HubOpenError::NoHub`), or a PostgreSQL database without its tables
    /// (`ConnectError::NoHub`), is refused, and nothing is made there.
    pub fn open_existing(&self) -> Result<Box<dyn Backend>, HubOpenError> {
        match self {
            Database::Embedded { data, .. } => {
                existing_hub(data)?;
                self.open()
            }
            Database::Postgres {
                url,
                connections,
                data,
                key,
            } => {
                let backend = postgres::Postgres::connect_existing(url, *connections, key, data)?;
                // Erasures and revocations made through it are journaled as `open`'s are.
                irreversible::keep(self, Box::new(backend), false, false)
            }
        }
    }

    /// Opens the hub, making it (and its key) if there is none yet.
    /// What the hub must never undo (`irreversible`) is done again first if a restore undid it.
    /// A command's opening: the files are not upgraded under a running `vigie serve`
    /// (`HubOpenError::UpgradeBesideServe`).
    pub fn open(&self) -> Result<Box<dyn Backend>, HubOpenError> {
        self.open_as(false)
    }

    /// `open`, by the `vigie serve` that holds the data directory (`lock_for_serving`).
    fn open_as(&self, serving: bool) -> Result<Box<dyn Backend>, HubOpenError> {
        // Whether the embedded hub's files are a backup's, opened for the first time.
        let mut from_backup = false;
        let backend: Box<dyn Backend> = match self {
            Database::Embedded { data, key } => {
                // One process at a time makes or upgrades the hub's files: two first commands
                // at once on a new directory (a set-up script's `serve` and `reference
                // publish`) found each other's files half made, said the hub was cut or
                // missing a file, and `serve` stopped.
                if written_hub_files(data).is_empty() {
                    key_of_no_other_hub(data, key)?;
                }
                make_data_dir(data)?;
                let _opening = lock_for_opening(data)?;
                whole_hub(data)?;
                let encryption = hub_encryption(data, key)?;
                // A command beside a running server does not upgrade the files under it: that
                // server, of the earlier version, would go on writing them as its version did
                // (index rows without the columns the upgrade added, by the rules it replaced),
                // which no later start writes again: an operator who ran the new binary's
                // `vigie user list` before restarting the service found the district's
                // overview failing for good. Files at this version's schema open as always.
                let upgrade = serving || !served_now(data);
                let withheld = |e| withheld_beside_serve(data, e);
                let (store, restored) =
                    open_hub_store(data, encryption.clone(), upgrade).map_err(withheld)?;
                let registry = open_registry_as(data, &encryption, upgrade).map_err(withheld)?;
                let backend = Embedded::new(store, registry, encryption)?;
                // The console's journal is restored with the rest: what it held since the
                // backup is gone, which its next line says (with the backup's time).
                if let Some(taken) = restored {
                    console::journal(&backend, None, "hub_restored", None, &taken.to_string());
                    from_backup = true;
                }
                Box::new(backend)
            }
            Database::Postgres {
                url,
                connections,
                data,
                key,
            } => Box::new(postgres::Postgres::connect(url, *connections, key, data)?),
        };
        irreversible::keep(self, backend, from_backup, serving)
    }
}

/// Opens the hub `vigie serve` serves: on an embedded hub, the caller holds its data directory
/// (`lock_for_serving`).
pub fn open_hub(database: &Database, limits: HubLimits) -> Result<http::Hub, HubOpenError> {
    let backend = database.open_as(true)?;
    let workers = http::Workers::start(backend.concurrency())?;
    let console_workers = http::Workers::start(console::WORKERS)?;
    Ok(http::Hub::new(backend, limits, workers, console_workers))
}

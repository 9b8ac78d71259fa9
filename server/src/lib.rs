//! Vigie's hub: the store supervisors' devices and field phones sync with.
//!
//! The hub holds records in the core's own store (embedded SQLite by default) or in PostgreSQL,
//! and answers sync requests with the core's own engine; this crate adds only the PostgreSQL
//! backend, enrolment, authentication and HTTP.

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

use auth::{AuthError, Registry};
use backend::{Backend, Embedded};
use hub_key::{KeyError, KeyOptions};
use std::path::Path;
use uuid::Uuid;
use vigie_core::sync::HubLimits;
use vigie_core::{Encryption, Store, StoreConfig, StoreRole};

#[derive(Debug, thiserror::Error)]
pub enum HubOpenError {
    #[error(transparent)]
    Store(#[from] vigie_core::Error),
    #[error(transparent)]
    Registry(#[from] AuthError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("cannot create the data directory: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Postgres(#[from] postgres::ConnectError),
    /// A command that works on an existing hub, given a directory that holds none (a mistyped
    /// `--data`): answering from a new empty hub would say that every user and record is gone.
    #[error(
        "no hub in {0}: check --data (a new hub is made by `vigie serve`, `vigie reference \
         publish` or `vigie user add`)"
    )]
    NoHub(std::path::PathBuf),
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
}

/// The hub's own device and user ids: the hub writes records (users) under them.
pub(crate) const HUB_ADMIN: Uuid = Uuid::from_u128(0x7669_6769_655f_6875_625f_6164_6d69_6e00);

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
    if written_hub_files(data).is_empty() {
        return Err(HubOpenError::NoHub(data.to_path_buf()));
    }
    whole_hub(data)
}

/// Whether the embedded hub in `data` is whole: either none of its files holds anything (a new
/// hub), or each does.
fn whole_hub(data: &Path) -> Result<(), HubOpenError> {
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

/// The embedded hub's files in `data` that hold something.
fn written_hub_files(data: &Path) -> Vec<std::path::PathBuf> {
    HUB_FILES
        .iter()
        .map(|name| data.join(name))
        .filter(|file| file.metadata().is_ok_and(|m| m.len() > 0))
        .collect()
}

/// Opens (creating if needed) the hub's record store in `data`.
pub fn open_store(data: &Path, encryption: Encryption) -> Result<Store, HubOpenError> {
    std::fs::create_dir_all(data)?;
    let config = StoreConfig::new(data.join("hub.db"), encryption, HUB_ADMIN).role(StoreRole::Hub);
    match Store::open(config) {
        Ok(store) => Ok(store),
        Err(vigie_core::Error::WrongKeyOrNotAStore) => Err(KeyError::Wrong.into()),
        Err(e) => Err(e.into()),
    }
}

/// Opens (creating if needed) the hub's device registry in `data`, with the store's key.
pub fn open_registry(data: &Path, encryption: &Encryption) -> Result<Registry, HubOpenError> {
    std::fs::create_dir_all(data)?;
    match Registry::open(&data.join("devices.db"), encryption) {
        Ok(registry) => Ok(registry),
        Err(AuthError::WrongKey) => Err(KeyError::Wrong.into()),
        Err(e) => Err(e.into()),
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

    /// Opens the hub, which must exist already: on the embedded store, a data directory
    /// without the hub's files is refused (`HubOpenError::NoHub`) and nothing is made there.
    /// A PostgreSQL database is the one its URL names; its tables are made if missing.
    pub fn open_existing(&self) -> Result<Box<dyn Backend>, HubOpenError> {
        if let Database::Embedded { data, .. } = self {
            existing_hub(data)?;
        }
        self.open()
    }

    /// Opens the hub, making it (and its key) if there is none yet.
    /// What the hub must never undo (`irreversible`) is done again first if a restore undid it.
    pub fn open(&self) -> Result<Box<dyn Backend>, HubOpenError> {
        let backend: Box<dyn Backend> = match self {
            Database::Embedded { data, key } => {
                whole_hub(data)?;
                let encryption = hub_encryption(data, key)?;
                Box::new(Embedded::new(
                    open_store(data, encryption.clone())?,
                    open_registry(data, &encryption)?,
                    encryption,
                )?)
            }
            Database::Postgres {
                url,
                connections,
                data,
                key,
            } => Box::new(postgres::Postgres::connect(url, *connections, key, data)?),
        };
        irreversible::keep(self, backend)
    }
}

pub fn open_hub(database: &Database, limits: HubLimits) -> Result<http::Hub, HubOpenError> {
    let backend = database.open()?;
    let workers = http::Workers::start(backend.concurrency())?;
    Ok(http::Hub::new(backend, limits, workers))
}

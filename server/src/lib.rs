//! Vigie's hub: the store supervisors' devices and field phones sync with.
//!
//! The hub holds records in the core's own store (embedded SQLite by default) or in PostgreSQL,
//! and answers sync requests with the core's own engine; this crate adds only the PostgreSQL
//! backend, enrolment, authentication and HTTP.

pub mod auth;
pub mod backend;
pub mod client;
pub mod http;
mod listener;
pub mod logging;
pub mod postgres;

use auth::{AuthError, Registry};
use backend::{Backend, Embedded};
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
    #[error("cannot create the data directory: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Postgres(#[from] postgres::ConnectError),
}

/// The hub's own device and user ids: the hub writes records (users) under them.
pub(crate) const HUB_ADMIN: Uuid = Uuid::from_u128(0x7669_6769_655f_6875_625f_6164_6d69_6e00);

/// Opens (creating if needed) the hub's files in `data`.
pub fn open_store(data: &Path, encryption: Encryption) -> Result<Store, HubOpenError> {
    std::fs::create_dir_all(data)?;
    let config = StoreConfig::new(data.join("hub.db"), encryption, HUB_ADMIN).role(StoreRole::Hub);
    Ok(Store::open(config)?)
}

pub fn open_registry(data: &Path) -> Result<Registry, HubOpenError> {
    std::fs::create_dir_all(data)?;
    Ok(Registry::open(&data.join("devices.db"))?)
}

/// Where a hub keeps its data: a directory for the embedded store, or a PostgreSQL URL.
#[derive(Clone)]
pub enum Database {
    Embedded {
        data: std::path::PathBuf,
        encryption: Encryption,
    },
    Postgres {
        url: String,
        connections: u32,
    },
}

impl Database {
    /// `postgres://…` or `postgresql://…` for PostgreSQL, else the embedded store in `data`.
    pub fn choose(
        database: Option<&str>,
        data: &Path,
        encryption: Encryption,
    ) -> Result<Database, HubOpenError> {
        match database {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Database::Postgres {
                    url: url.to_string(),
                    connections: 16,
                })
            }
            Some(_) => Err(postgres::ConnectError::BadUrl.into()),
            None => Ok(Database::Embedded {
                data: data.to_path_buf(),
                encryption,
            }),
        }
    }

    pub fn open(&self) -> Result<Box<dyn Backend>, HubOpenError> {
        Ok(match self {
            Database::Embedded { data, encryption } => Box::new(Embedded::new(
                open_store(data, encryption.clone())?,
                open_registry(data)?,
            )?),
            Database::Postgres { url, connections } => {
                Box::new(postgres::Postgres::connect(url, *connections)?)
            }
        })
    }
}

pub fn open_hub(database: &Database, limits: HubLimits) -> Result<http::Hub, HubOpenError> {
    let backend = database.open()?;
    let workers = http::Workers::start(backend.concurrency())?;
    Ok(http::Hub::new(backend, limits, workers))
}

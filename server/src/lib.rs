//! Vigie's hub: the store supervisors' devices and field phones sync with.
//!
//! The hub holds records in the core's own store (embedded SQLite by default) and answers sync
//! requests with the core's own engine; this crate adds only enrolment, authentication and HTTP.

pub mod auth;
pub mod client;
pub mod http;

use auth::{AuthError, Registry};
use std::path::Path;
use std::sync::Mutex;
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
}

/// The hub's own device and user ids: the hub writes records (users) under them.
const HUB_ADMIN: Uuid = Uuid::from_u128(0x7669_6769_655f_6875_625f_6164_6d69_6e00);

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

pub fn open_hub(
    data: &Path,
    encryption: Encryption,
    limits: HubLimits,
) -> Result<http::Hub, HubOpenError> {
    Ok(http::Hub {
        store: Mutex::new(open_store(data, encryption)?),
        registry: Mutex::new(open_registry(data)?),
        limits,
    })
}

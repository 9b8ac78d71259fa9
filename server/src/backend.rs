//! Where the hub keeps its records and its enrolled devices: the embedded SQLite store (the
//! default, one process) or PostgreSQL (several hub processes on one database). The HTTP layer
//! and the administration commands see only this interface.

use crate::auth::{AuthError, Registry, Token};
use std::sync::{Mutex, MutexGuard};
use uuid::Uuid;
use vigie_core::sync::{HubError, HubLimits, Principal};
use vigie_core::{Error, Store, User};

pub trait Backend: Send + Sync {
    /// Checks a presented token; returns the device's user.
    fn authenticate(&self, token: &Token) -> Result<Uuid, AuthError>;
    /// Enrols a new device for a user and returns its token (shown once, never stored).
    fn enrol(&self, user: Uuid) -> Result<Token, AuthError>;
    /// Revokes a device: its next request is refused. Returns whether it was enrolled.
    fn revoke(&self, device: Uuid) -> Result<bool, AuthError>;
    /// The user as the hub's records describe it now.
    fn user(&self, id: Uuid) -> Result<Option<User>, Error>;
    fn add_user(&self, user: &User) -> Result<User, Error>;
    /// How many requests it can usefully serve at once.
    fn concurrency(&self) -> usize;
    /// Handles one sync request from an authenticated device.
    fn sync(
        &self,
        who: &Principal,
        request: &[u8],
        limits: &HubLimits,
    ) -> Result<Vec<u8>, HubError>;
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock rolled back its transaction on unwind: the data is sound.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The embedded hub: one SQLite store and one device registry, used by one process.
pub struct Embedded {
    pub store: Mutex<Store>,
    pub registry: Mutex<Registry>,
}

impl Backend for Embedded {
    fn concurrency(&self) -> usize {
        // One writer; a second thread authenticates the next request meanwhile.
        2
    }

    fn authenticate(&self, token: &Token) -> Result<Uuid, AuthError> {
        lock(&self.registry).authenticate(token)
    }

    fn enrol(&self, user: Uuid) -> Result<Token, AuthError> {
        lock(&self.registry).enrol(user)
    }

    fn revoke(&self, device: Uuid) -> Result<bool, AuthError> {
        lock(&self.registry).revoke(device)
    }

    fn user(&self, id: Uuid) -> Result<Option<User>, Error> {
        match lock(&self.store).get::<User>(id) {
            Ok(user) => Ok(Some(user)),
            Err(Error::NotFound { .. }) | Err(Error::WrongKind { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn add_user(&self, user: &User) -> Result<User, Error> {
        lock(&self.store).create(user)
    }

    fn sync(
        &self,
        who: &Principal,
        request: &[u8],
        limits: &HubLimits,
    ) -> Result<Vec<u8>, HubError> {
        lock(&self.store).hub_handle(who, request, limits)
    }
}

//! Where the hub keeps its records and its enrolled devices: the embedded SQLite store (the
//! default, one process) or PostgreSQL (several hub processes on one database). The HTTP layer
//! and the administration commands see only this interface.

use crate::auth::{AuthError, Registry, Token};
use std::sync::{Arc, Mutex, MutexGuard};
use uuid::Uuid;
use vigie_core::sync::{
    HubError, HubLimits, HubStorage, Principal, Quarantined, accept_quarantined, erase_record,
    read_record, update_record,
};
use vigie_core::{ChangeAuthor, Error, ReferenceData, ReferenceFile, Store, User};

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
    /// Erases a child case everywhere, as the supervisor `by` asks. Returns whether it was there.
    fn erase(&self, by: Uuid, record: Uuid) -> Result<bool, Error>;
    /// Changes held for review (sent by users who lost the record's area), oldest first.
    fn quarantined(&self) -> Result<Vec<Quarantined>, Error>;
    /// Merges (`accept`) or drops one quarantined entry. Returns whether it existed.
    fn review_quarantined(&self, entry: i64, accept: bool) -> Result<bool, Error>;
    /// Gives a user new areas: their devices receive what the new areas hold, and records of
    /// the areas they lost leave their devices.
    fn set_user_areas(&self, user: Uuid, areas: &[String]) -> Result<User, Error>;
    /// The reference data in force: built in, and every version published on this hub.
    fn reference(&self) -> Result<Arc<ReferenceData>, Error>;
    /// Publishes a file's content as the next version of its document (an area tree, a
    /// country profile...); devices receive it at their next sync. Returns the version.
    fn publish_reference(&self, file: &ReferenceFile) -> Result<u32, Error>;
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

/// The work of the administration calls, the same on every storage.
pub(crate) fn erase_in<S: HubStorage + ?Sized>(
    storage: &mut S,
    by: Uuid,
    record: Uuid,
) -> Result<bool, Error> {
    storage.in_transaction(&mut |tx| {
        let user = read_record::<User>(tx, by)?
            .filter(|u| u.active)
            .ok_or_else(|| Error::NotAllowed {
                rule: "the erasing user is unknown or inactive".into(),
            })?;
        let who = Principal {
            device: crate::HUB_ADMIN,
            user: by,
            role: user.role,
            areas: user.areas.clone(),
        };
        erase_record(tx, &who, record)
    })
}

pub(crate) fn review_in<S: HubStorage + ?Sized>(
    storage: &mut S,
    entry: i64,
    accept: bool,
) -> Result<bool, Error> {
    storage.in_transaction(&mut |tx| {
        let Some(quarantined) = tx.take_quarantined(entry)? else {
            return Ok(false);
        };
        if accept {
            accept_quarantined(tx, &quarantined)?;
        }
        Ok(true)
    })
}

pub(crate) fn set_areas_in<S: HubStorage + ?Sized>(
    storage: &mut S,
    actor: &automerge::ActorId,
    reference: &ReferenceData,
    user: Uuid,
    areas: &[String],
) -> Result<User, Error> {
    let author = ChangeAuthor {
        user: crate::HUB_ADMIN,
        device: crate::HUB_ADMIN,
    };
    storage.in_transaction(&mut |tx| {
        let mut record = read_record::<User>(tx, user)?.ok_or(Error::NotFound {
            kind: Some(vigie_core::RecordKind::User),
            id: user,
        })?;
        record.areas = areas.iter().cloned().collect();
        update_record(tx, actor, author, reference, &record)
    })
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

    fn erase(&self, by: Uuid, record: Uuid) -> Result<bool, Error> {
        let mut store = lock(&self.store);
        let erased = erase_in(&mut *store, by, record)?;
        store.purge_freed_content()?;
        Ok(erased)
    }

    fn quarantined(&self) -> Result<Vec<Quarantined>, Error> {
        lock(&self.store).in_transaction(&mut |tx| tx.quarantined())
    }

    fn review_quarantined(&self, entry: i64, accept: bool) -> Result<bool, Error> {
        review_in(&mut *lock(&self.store), entry, accept)
    }

    fn reference(&self) -> Result<Arc<ReferenceData>, Error> {
        Ok(lock(&self.store).reference())
    }

    fn publish_reference(&self, file: &ReferenceFile) -> Result<u32, Error> {
        lock(&self.store).publish_reference(&file.key, file.content.clone())
    }

    fn set_user_areas(&self, user: Uuid, areas: &[String]) -> Result<User, Error> {
        let mut store = lock(&self.store);
        let actor = store.actor().clone();
        let reference = store.reference().clone();
        set_areas_in(&mut *store, &actor, &reference, user, areas)
    }
}

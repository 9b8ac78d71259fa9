//! Where the hub keeps its records and its enrolled devices: the embedded SQLite store (the
//! default, one process) or PostgreSQL (several hub processes on one database). The HTTP layer
//! and the administration commands see only this interface.

use crate::auth::{AuthError, Registry, Token};
use std::sync::{Mutex, MutexGuard};
use uuid::Uuid;
use vigie_core::sync::{
    HubError, HubLimits, HubStorage, Principal, QuarantineView, Reviewer, accept_quarantined,
    describe_quarantined, erase_record, read_record, update_record,
};
use vigie_core::{ChangeAuthor, Error, ReferenceData, Store, User};

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
    /// Changes held for review (sent by users who lost the record's area), oldest first, each
    /// with what it would change (never a value).
    fn quarantined(&self) -> Result<Vec<QuarantineView>, Error>;
    /// Merges (`accept`) or drops one quarantined entry. An accepted entry must pass the rules
    /// a push passes, with the scope of the supervisor `by` (without one: the record stays in
    /// its community). Returns whether it existed.
    fn review_quarantined(&self, entry: i64, accept: bool, by: Option<Uuid>)
    -> Result<bool, Error>;
    /// Gives a user new areas: their devices receive what the new areas hold, and records of
    /// the areas they lost leave their devices.
    fn set_user_areas(&self, user: Uuid, areas: &[String]) -> Result<User, Error>;
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
/// The principal an administration command acts as: an active user, through the hub.
fn acting_user(
    tx: &mut dyn vigie_core::sync::HubTransaction,
    by: Uuid,
    what: &str,
) -> Result<Principal, Error> {
    let user = read_record::<User>(tx, by)?
        .filter(|u| u.active)
        .ok_or_else(|| Error::NotAllowed {
            rule: format!("the {what} user is unknown or inactive"),
        })?;
    Ok(Principal {
        device: crate::HUB_ADMIN,
        user: by,
        role: user.role,
        areas: user.areas.clone(),
    })
}

pub(crate) fn erase_in<S: HubStorage + ?Sized>(
    storage: &mut S,
    by: Uuid,
    record: Uuid,
) -> Result<bool, Error> {
    storage.in_transaction(&mut |tx| {
        let who = acting_user(tx, by, "erasing")?;
        erase_record(tx, &who, record)
    })
}

pub(crate) fn quarantined_in<S: HubStorage + ?Sized>(
    storage: &mut S,
) -> Result<Vec<QuarantineView>, Error> {
    storage.in_transaction(&mut |tx| {
        tx.quarantined()?
            .iter()
            .map(|entry| describe_quarantined(tx, entry))
            .collect()
    })
}

pub(crate) fn review_in<S: HubStorage + ?Sized>(
    storage: &mut S,
    reference: &ReferenceData,
    entry: i64,
    accept: bool,
    by: Option<Uuid>,
) -> Result<bool, Error> {
    storage.in_transaction(&mut |tx| {
        let reviewer = match by {
            Some(by) => Reviewer::Supervisor(acting_user(tx, by, "reviewing")?),
            None => Reviewer::Hub,
        };
        let Some(quarantined) = tx.take_quarantined(entry)? else {
            return Ok(false);
        };
        if accept {
            // A refusal rolls the transaction back: the entry stays for another review.
            accept_quarantined(tx, &quarantined, &reviewer, reference)?;
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

    fn quarantined(&self) -> Result<Vec<QuarantineView>, Error> {
        quarantined_in(&mut *lock(&self.store))
    }

    fn review_quarantined(
        &self,
        entry: i64,
        accept: bool,
        by: Option<Uuid>,
    ) -> Result<bool, Error> {
        let mut store = lock(&self.store);
        let reference = store.reference();
        review_in(&mut *store, &reference, entry, accept, by)
    }

    fn set_user_areas(&self, user: Uuid, areas: &[String]) -> Result<User, Error> {
        let mut store = lock(&self.store);
        let actor = store.actor().clone();
        let reference = store.reference().clone();
        set_areas_in(&mut *store, &actor, &reference, user, areas)
    }
}

//! Where the hub keeps its records and its enrolled devices: the embedded SQLite store (the
//! default, one process) or PostgreSQL (several hub processes on one database). The HTTP layer
//! and the administration commands see only this interface.

use crate::auth::{AuthError, DeviceInfo, Registry, Token};
use crate::console::storage::ConsoleStorage;
use crate::console::view::View;
use automerge::ChangeHash;
use parking_lot::FairMutex;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use uuid::Uuid;
use vigie_core::identity::HubKey;
use vigie_core::sync::{
    Certifier, DeviceRegistry, ErasedRecords, HubBundleReport, HubError, HubLimits, HubReader,
    HubStorage, HubTransaction, Principal, QuarantineView, RegisteredDevice, Reviewer,
    accept_quarantined, describe_quarantined, erase_record, handle_attachment,
    handle_certified_sync, import_hub_bundle, read_record, reject_quarantined, update_record,
};
use vigie_core::{Error, ReferenceData, ReferenceFile, Store, User, codec, doc};

/// A hub's incarnation and how far its change order has gone (`Backend::change_order_mark`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeOrderMark {
    /// The database's name: a machine keeps a mark for each database it opened (a copy of
    /// the hub's restored beside it to look into is not the hub's).
    pub database: String,
    pub incarnation: [u8; 16],
    /// The last place of the change order given out (never smaller, but by a restore).
    pub sequence: i64,
}

/// Bytes from hex (`hub_key::hex`); `None` for anything else.
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

/// An incarnation as the database and the marks write it: 32 hex digits.
pub(crate) fn incarnation_of(text: &str) -> Option<[u8; 16]> {
    unhex(text)?.try_into().ok()
}

pub trait Backend: Send + Sync {
    /// The hub's incarnation and how far its change order has gone, for a database several
    /// machines share and the operator restores with its own tools (PostgreSQL: `pg_restore`):
    /// each machine keeps the last it saw beside its key (`irreversible`), and a database found
    /// behind it was restored. `None` for the embedded store, whose backups are marked.
    fn change_order_mark(&self) -> Result<Option<ChangeOrderMark>, Error> {
        Ok(None)
    }

    /// Takes a new incarnation in place of `from` (the database was restored from an older
    /// copy): every device that synced before is told, and offers again what it holds. Returns
    /// whether this call took it (another machine may have, first).
    fn take_new_incarnation(&self, _from: [u8; 16]) -> Result<bool, Error> {
        Ok(false)
    }

    /// Whether the storage answers (`GET /v1/health`): a database several machines share may
    /// be down or restarting while the hub runs.
    fn reachable(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Checks a presented token; returns the device's user.
    fn authenticate(&self, token: &Token) -> Result<Uuid, AuthError>;
    /// The hub's signed order to wipe itself for `device`, revoked
    /// (`vigie_core::identity::HubKey::wipe_order`): what it is answered with.
    fn wipe_order(&self, device: Uuid) -> String;
    /// Enrols a new device for a user and returns its token (shown once, never stored).
    fn enrol(&self, user: Uuid) -> Result<Token, AuthError> {
        self.enrol_device(user, Uuid::new_v4())?
            .ok_or_else(|| AuthError::Storage("a new device id was taken already".into()))
    }
    /// `enrol`, under the device id `device`: `None` when it is enrolled already (a console
    /// form sent twice, by a reload or Back: one device, not two, each with a token).
    fn enrol_device(&self, user: Uuid, device: Uuid) -> Result<Option<Token>, AuthError>;
    /// Revokes a device: its next request is refused. Returns whether it was enrolled.
    fn revoke(&self, device: Uuid) -> Result<bool, AuthError>;
    /// Whether the registry holds the device as revoked.
    fn is_revoked(&self, device: Uuid) -> Result<bool, AuthError> {
        Ok(self
            .devices()?
            .iter()
            .any(|d| d.device == device && d.revoked_ms.is_some()))
    }
    /// Keeps the revocation of a device the storage does not know (enrolled after the copy it
    /// was restored from, revoked since: the journal holds it), as a revoked device: it is told
    /// to wipe by every process, the device list shows it, and the next start does not find
    /// the revocation missing again (and journal it again).
    fn revoked_unknown(&self, device: Uuid) -> Result<(), AuthError>;
    /// The user as the hub's records describe it now.
    fn user(&self, id: Uuid) -> Result<Option<User>, Error>;
    fn add_user(&self, user: &User) -> Result<User, Error>;
    /// Erases a child case everywhere, as the supervisor `by` asks. Returns whether it was there.
    /// Committed, not yet completed: `purge_erased` completes it once it is journaled.
    fn erase(&self, by: Uuid, record: Uuid) -> Result<ErasedRecords, Error>;
    /// Completes the erasures made: what held them is overwritten in the file (the embedded
    /// store's free pages). Run after they are journaled: a process killed during the purge
    /// (a tenth of a second) had erased a child the journal did not know, whom a restore
    /// brought back.
    fn purge_erased(&self) -> Result<(), Error> {
        Ok(())
    }
    /// Changes held for review (sent by users who lost the record's area), oldest first, each
    /// with what it would change (never a value).
    fn quarantined(&self) -> Result<Vec<QuarantineView>, Error>;
    /// When the hub stored each change of a record (`received_in`).
    fn received_times(&self, id: Uuid) -> Result<HashMap<ChangeHash, i64>, Error>;
    /// Every record erased, with when (`HubTransaction::erasures`).
    fn erasures(&self) -> Result<Vec<(Uuid, i64)>, Error>;
    /// Merges (`accept`) or drops one quarantined entry. An accepted entry must pass the rules
    /// a push passes, with the scope of the supervisor `by` (without one: the record stays in
    /// its community). Returns whether it existed.
    fn review_quarantined(&self, entry: i64, accept: bool, by: Option<Uuid>)
    -> Result<bool, Error>;
    /// Gives a user new areas: their devices receive what the new areas hold, and records of
    /// the areas they lost leave their devices.
    fn set_user_areas(&self, user: Uuid, areas: &[String]) -> Result<User, Error>;
    /// Every user, in id order.
    fn users(&self) -> Result<Vec<User>, Error>;
    /// Deactivates a user: each device of theirs syncs from then on with nothing in scope (its
    /// pending changes are pushed and kept for review, and what it holds leaves it).
    /// Returns whether they were active; `NotFound` if there is no such user.
    fn deactivate_user(&self, user: Uuid) -> Result<bool, Error>;
    /// Changes a user's record as the administrator (a new role, a return to activity):
    /// `change` edits it, or refuses with an error that rolls everything back. Their devices'
    /// certificates say the result at once, as after new areas. Returns the record before and
    /// after; `NotFound` if there is no such user.
    fn change_user(
        &self,
        user: Uuid,
        change: &dyn Fn(&mut User) -> Result<(), Error>,
    ) -> Result<(User, User), Error>;
    /// Every enrolled device, revoked ones included, with when it was last seen.
    fn devices(&self) -> Result<Vec<DeviceInfo>, AuthError>;
    /// A new token for an enrolled device, same device and user: the old token stops working
    /// at once, and the device keeps its store. Its keys are unbound: the next ones it
    /// presents are certified (a store re-created after a wipe). `Unknown` if there is no such
    /// device, `Revoked` if it was revoked (enrol a new one).
    fn reissue(&self, device: Uuid) -> Result<Token, AuthError>;
    /// The reference data in force: built in, and every version published on this hub.
    fn reference(&self) -> Result<Arc<ReferenceData>, Error>;
    /// Publishes each file's content as the next version of its type and key (an area tree, a
    /// country profile...), all in one transaction: every file or, if one is refused, none.
    /// Devices receive them at their next sync. Returns the versions, in the files' order.
    fn publish_references(&self, files: &[ReferenceFile]) -> Result<Vec<u32>, Error>;
    /// How many requests it can usefully serve at once.
    fn concurrency(&self) -> usize;
    /// The console's accounts, sessions, throttling and audit log.
    fn console(&self) -> &dyn ConsoleStorage;
    /// The key of the console's pre-sign-in form tokens (`console::session::form_key`), from
    /// the hub's signing key: every process of one hub has the same, at every start.
    fn console_form_key(&self) -> [u8; 32];
    /// Opens the console's view of the records (`console::view`).
    fn open_view(&self) -> Result<View, Error>;
    /// Brings the console's view up to date with what the hub holds now.
    fn refresh_view(&self, view: &mut View) -> Result<(), Error>;
    /// Runs `work` in one write transaction of the hub's storage (a console action: an ordinary
    /// write in the change order, which devices receive at their next sync). Erased content is
    /// purged from the files afterwards, as `erase` does.
    fn write(
        &self,
        work: &mut dyn FnMut(&mut dyn HubTransaction) -> Result<(), Error>,
    ) -> Result<(), Error>;
    /// The actor the hub writes its own changes with (console actions).
    fn actor(&self) -> automerge::ActorId;
    /// Handles one sync request from an authenticated device.
    fn sync(
        &self,
        who: &Principal,
        request: &[u8],
        limits: &HubLimits,
    ) -> Result<Vec<u8>, HubError>;
    /// Handles one attachment request (a chunk up or down) from an authenticated device.
    fn attachment(
        &self,
        who: &Principal,
        request: &[u8],
        limits: &HubLimits,
    ) -> Result<Vec<u8>, HubError>;
    /// Imports a bundle a device sealed to the hub, each record judged as that device's push
    /// (`import_hub_bundle`).
    fn import_bundle(&self, bytes: &[u8], limits: &HubLimits) -> Result<HubBundleReport, HubError>;
}

/// Who the device that signed a bundle syncs as now (`import_hub_bundle`): enrolled, not
/// revoked, with the keys its certificate names bound to it, for the user it names. Otherwise
/// why the bundle is refused: the device was revoked, or the hub no longer binds it to those
/// keys (reissued since: the certificate, signed by this hub, proves it was bound once).
pub(crate) fn bundle_exporter(
    hub: &dyn Backend,
    registry: &dyn DeviceRegistry,
    certificate: &vigie_core::identity::Certificate,
) -> Result<Principal, Error> {
    use vigie_core::identity::{Certificate, IdentityError};
    let device = certificate.device;
    let registered = registry.devices()?.into_iter().find(|d| d.device == device);
    if registered.is_none() {
        // Not certified now: reissued since (its certificate unbound), or never enrolled here
        // (a hub restored from a backup made before the device's enrolment).
        let enrolled = hub
            .devices()
            .map_err(|e| Error::HubStorage {
                reason: e.to_string(),
                retryable: false,
            })?
            .iter()
            .any(|d| d.device == device);
        if !enrolled {
            return Err(IdentityError::NotEnrolled { device }.into());
        }
    }
    if registered.as_ref().is_some_and(|d| d.revoked) {
        return Err(IdentityError::Revoked { device }.into());
    }
    let bound = registered
        .and_then(|d| d.certificate)
        .and_then(|bytes| Certificate::from_bytes(&bytes).ok())
        .is_some_and(|held| held.keys == certificate.keys && held.user == certificate.user);
    if !bound {
        return Err(IdentityError::KeysReplaced { device }.into());
    }
    let user = hub
        .user(certificate.user)?
        .ok_or_else(|| Error::NotAllowed {
            rule: "the bundle's exporter is a user unknown to this hub".into(),
        })?;
    Ok(Principal {
        device,
        user: user.id,
        role: user.role,
        areas: areas_in_force(&user),
    })
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

/// The refusal of an erasure of an id erased before (nothing more to erase; `vigie erase`
/// says so rather than taking the id for mistyped).
pub const ERASED_ALREADY: &str = "the record is erased already";

pub(crate) fn erase_in<S: HubStorage + ?Sized>(
    storage: &mut S,
    by: Uuid,
    record: Uuid,
) -> Result<ErasedRecords, Error> {
    storage.in_transaction(&mut |tx| {
        let who = acting_user(tx, by, "erasing")?;
        // Two `vigie erase` of one record at once (a script run again after a timeout): the
        // second sees the first's tombstone, rather than the record gone and taken for an id
        // never held.
        tx.one_at_a_time_on(record)?;
        if tx.is_erased(record)? {
            return Err(Error::NotAllowed {
                rule: ERASED_ALREADY.into(),
            });
        }
        erase_record(tx, &who, record)
    })
}

/// When the hub stored each change of the record `id`, by its own clock (milliseconds since the
/// epoch): a change carries the time its device's clock gave it, which the device's user sets.
pub(crate) fn received_in<S: HubStorage + ?Sized>(
    storage: &mut S,
    id: Uuid,
) -> Result<HashMap<ChangeHash, i64>, Error> {
    storage.in_transaction(&mut |tx| {
        let mut received = HashMap::new();
        for entry in tx.change_log(id)? {
            for hash in codec::heads_of(&entry.changes) {
                // The first time it was stored: a change pushed again is the same change.
                received.entry(hash).or_insert(entry.at_ms);
            }
        }
        Ok(received)
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
    actor: &automerge::ActorId,
    reference: &ReferenceData,
    (entry, accept, by): (i64, bool, Option<Uuid>),
    revoked: &HashSet<Uuid>,
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
            accept_quarantined(tx, actor, &quarantined, &reviewer, reference)?;
            refile_after_review(tx, actor, reference, quarantined.record)?;
        } else {
            if let Reviewer::Supervisor(who) = &reviewer {
                // A supervisor rejects what the review queue shows them: entries of a record
                // in their areas, before or after the changes (as an acceptance requires).
                if who.role != vigie_core::Role::Supervisor {
                    return Err(Error::NotAllowed {
                        rule: "only a supervisor reviews quarantined changes".into(),
                    });
                }
                let view = describe_quarantined(tx, &quarantined)?;
                let scope = who.scope(reference);
                if !view
                    .reviewed_at()
                    .iter()
                    .any(|a| a.is_some_and(|a| scope.covers(a)))
                {
                    return Err(Error::NotAllowed {
                        rule: "the record is outside the reviewer's areas".into(),
                    });
                }
            }
            reject_quarantined(tx, &quarantined, revoked.contains(&quarantined.device))?;
        }
        // Either way, once no entry waits for the record, the attachments its manifest does
        // not name go: rejected entries' bytes, and those its saves removed while entries
        // waited (kept for them then).
        drop_unnamed_attachments(tx, quarantined.record)?;
        // Remembered with the decision, in its transaction: a command stopped before its audit
        // entry is told, asked again, what was decided, and journals it then.
        let decided = if accept { "accepted" } else { "rejected" };
        let decider = by.map_or_else(|| "hub".to_string(), |by| by.to_string());
        tx.set_setting(
            &settled_key(entry),
            &format!("{decided} {} {decider}", quarantined.record),
        )?;
        Ok(true)
    })
}

fn settled_key(entry: i64) -> String {
    format!("quarantine_settled.{entry}")
}

/// How a quarantine entry was settled (`settled_quarantine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    pub accepted: bool,
    /// The record it held changes of.
    pub record: Uuid,
    /// The supervisor who decided (`None`: the hub's operator, unnamed).
    pub by: Option<Uuid>,
}

/// How quarantine entry `entry` was settled (`review_in`). `None` for an entry waiting, never
/// given, or settled before the hub remembered its reviews.
pub fn settled_quarantine(backend: &dyn Backend, entry: i64) -> Result<Option<Settled>, Error> {
    let mut found = None;
    backend.write(&mut |tx| {
        found = tx.setting(&settled_key(entry))?;
        Ok(())
    })?;
    Ok(found.and_then(|value| {
        let mut words = value.split(' ');
        let accepted = words.next()? == "accepted";
        let record = words.next()?.parse().ok()?;
        let by = match words.next()? {
            "hub" => None,
            by => Some(by.parse().ok()?),
        };
        Some(Settled {
            accepted,
            record,
            by,
        })
    }))
}

/// A record a review accepted under a community no area tree holds any more (its author
/// recorded it before the community was merged or renamed) is filed where that community's
/// records were filed again (`refile_community`), as that command would have filed it had it
/// been on the hub then: else no one who works there sees it. One under a community the tree
/// in force places in another district (moved since) is filed where the tree puts it, as
/// that command files them. One that would break a rule there stays where it is (the warning
/// on accepting names the command).
fn refile_after_review(
    tx: &mut dyn HubTransaction,
    actor: &automerge::ActorId,
    reference: &ReferenceData,
    record: Uuid,
) -> Result<(), Error> {
    let Some(area) = tx.record(record, false)?.and_then(|r| r.area) else {
        return Ok(());
    };
    let Some(to) = vigie_core::sync::refiled_area(tx, reference, &area)? else {
        return Ok(());
    };
    match vigie_core::sync::refile_record(tx, actor, crate::ADMIN_AUTHOR, reference, record, &to) {
        Err(Error::Validation(_)) => Ok(()),
        other => other.map(|_| ()),
    }
}

/// The devices the hub revoked: what tells a lost phone's work colleagues carried, in the
/// quarantine, from the rest (its list and its page say so, and its rejection gives nothing
/// up: `reject_quarantined`).
pub fn revoked_devices(backend: &dyn Backend) -> Result<HashSet<Uuid>, Error> {
    Ok(backend
        .devices()
        .map_err(|e| Error::HubStorage {
            reason: e.to_string(),
            retryable: false,
        })?
        .into_iter()
        .filter(|d| d.revoked_ms.is_some())
        .map(|d| d.device)
        .collect())
}

/// Once the last entry waiting for a record is reviewed, the attachments the record's manifest
/// does not name go: nothing will name them.
fn drop_unnamed_attachments(tx: &mut dyn HubTransaction, record: Uuid) -> Result<(), Error> {
    if !tx.quarantined_for(record)?.is_empty() {
        return Ok(());
    }
    let keep: Vec<Uuid> = match tx.record(record, false)? {
        Some(stored) => doc::attachments(&codec::load(record, &stored.document)?)
            .iter()
            .map(|a| a.id)
            .collect(),
        None => Vec::new(),
    };
    tx.drop_attachments_except(record, &keep)
}

pub(crate) fn set_areas_in<S: HubStorage + ?Sized>(
    storage: &mut S,
    actor: &automerge::ActorId,
    reference: &ReferenceData,
    user: Uuid,
    areas: &[String],
) -> Result<User, Error> {
    let (_, after) = change_user_in(storage, actor, reference, user, &|record| {
        record.areas = areas.iter().cloned().collect();
        Ok(())
    })?;
    Ok(after)
}

/// What `refile_community` did: how many records it filed again, and those it left where they
/// were because, filed there, they would break a rule (each with the field and rule).
#[derive(Debug, Default)]
pub struct Refiled {
    /// The records filed under the community, filed again or not.
    pub held: usize,
    pub refiled: usize,
    pub kept: Vec<(Uuid, vigie_core::ValidationError)>,
}

/// Files every record held under the community code `from` again under `to` (a community of
/// the tree in force), as the hub's administrator, a few hundred to a transaction
/// (`vigie reference refile`). A record that would break a rule there is left where it was
/// and said, not the others with it: the rule is checked before anything of it is written.
pub fn refile_community(
    backend: &dyn Backend,
    from: &str,
    to: &vigie_core::Area,
) -> Result<Refiled, Error> {
    let reference = backend.reference()?;
    let mut view = backend.open_view()?;
    backend.refresh_view(&mut view)?;
    let held = view.store.records_filed_under(from)?;
    drop(view);
    // A record keeps its country (its reference data, and who may see it, are that country's):
    // a community of another country's tree is a mistyped code.
    if let Some((_, other)) = held.iter().find(|(_, area)| area.country != to.country) {
        return Err(vigie_core::ValidationError::new(
            "to",
            format!(
                "a community of {}, not of {}, the country of the records filed under {from}",
                to.country, other.country
            ),
        )
        .into());
    }
    let held_count = held.len();
    let filed: Vec<Uuid> = held
        .into_iter()
        .filter(|(_, area)| area != to)
        .map(|(id, _)| id)
        .collect();
    let (actor, author) = (backend.actor(), crate::ADMIN_AUTHOR);
    let (refiled, kept) =
        in_batches(
            backend,
            &filed,
            &mut |tx, id| match vigie_core::sync::refile_record(
                tx, &actor, author, &reference, id, to,
            ) {
                Err(Error::Validation(rule)) => Ok(Err(rule)),
                other => other.map(Ok),
            },
        )?;
    // What reaches the hub later filed under a community no tree holds any more (a phone's
    // work kept for review, accepted after this) goes where its records went
    // (`refile_after_review`).
    if from != to.community && vigie_core::sync::community_gone(from, &reference) {
        backend.write(&mut |tx| tx.set_refiled_to(from, &to.community))?;
    }
    Ok(Refiled {
        held: held_count,
        refiled,
        kept,
    })
}

/// What `hand_over_cases` did: how many cases it gave the successor, and those it left with
/// the user they were assigned to (each with why: outside the successor's areas).
#[derive(Debug, Default)]
pub struct HandedOver {
    pub handed: usize,
    pub kept: Vec<(Uuid, String)>,
}

/// Gives every case assigned to `from` (`identified_by`) to `to`, as the hub's
/// administrator, a batch to a transaction (`vigie user hand-over`): a monitor who left or
/// moved, whose cases' follow-ups no one else had on their due list. A case outside `to`'s
/// role and areas stays with `from`, and is said.
pub fn hand_over_cases(backend: &dyn Backend, from: Uuid, to: Uuid) -> Result<HandedOver, Error> {
    if from == to {
        return Err(Error::NotAllowed {
            rule: "a user's cases are handed over to another user".into(),
        });
    }
    let successor = backend.user(to)?.ok_or(Error::NotFound {
        kind: Some(vigie_core::RecordKind::User),
        id: to,
    })?;
    vigie_core::sync::may_take_over(&successor)?;
    let reference = backend.reference()?;
    let mut view = backend.open_view()?;
    backend.refresh_view(&mut view)?;
    let assigned = view.store.cases_assigned_to(from)?;
    drop(view);
    let (actor, author) = (backend.actor(), crate::ADMIN_AUTHOR);
    let (handed, kept) =
        in_batches(
            backend,
            &assigned,
            &mut |tx, id| match vigie_core::sync::hand_over_case(
                tx, &actor, author, &reference, id, from, &successor,
            ) {
                Err(Error::NotAllowed { rule }) => Ok(Err(rule)),
                other => other.map(Ok),
            },
        )?;
    Ok(HandedOver { handed, kept })
}

/// One record's write of `in_batches`: whether it changed, or why it was left as it was.
type BatchWrite<'a, Why> =
    dyn FnMut(&mut dyn HubTransaction, Uuid) -> Result<Result<bool, Why>, Error> + 'a;

/// Writes each record of `ids` with `write`, `BATCH` records to a transaction, the store left
/// free between two batches: how many changed, and those `write` refused (`Ok(Err(why))`),
/// left as they were. Another error stops the work (the batches before it stay done).
fn in_batches<Why>(
    backend: &dyn Backend,
    ids: &[Uuid],
    write: &mut BatchWrite<'_, Why>,
) -> Result<(usize, Vec<(Uuid, Why)>), Error> {
    let (mut changed, mut kept) = (0, Vec::new());
    for (n, batch) in ids.chunks(BATCH).enumerate() {
        // Between batches the store is left free for as long as a batch took: the running
        // hub's writer, waiting on the lock, gets it (SQLite's wait is no queue, and batch
        // after batch at once kept phones' pushes out past their wait).
        if n > 0 {
            std::thread::sleep(BATCH_PAUSE);
        }
        // Counted once the batch is committed (a transaction run again counts again).
        let (mut batch_changed, mut batch_kept) = (0, Vec::new());
        backend.write(&mut |tx| {
            (batch_changed, batch_kept) = (0, Vec::new());
            for id in batch {
                match write(tx, *id)? {
                    Ok(true) => batch_changed += 1,
                    Ok(false) => {}
                    Err(why) => batch_kept.push((*id, why)),
                }
            }
            Ok(())
        })?;
        changed += batch_changed;
        kept.append(&mut batch_kept);
    }
    Ok((changed, kept))
}

/// Records written in one transaction by an administration command over many
/// (`refile_community`, `hand_over_cases`): devices syncing meanwhile wait for one batch at
/// most (some 100 ms at a region's scale).
const BATCH: usize = 100;
/// The store left free between two batches.
const BATCH_PAUSE: std::time::Duration = std::time::Duration::from_millis(150);

/// Deactivates a user; returns the user before and after.
pub(crate) fn deactivate_in<S: HubStorage + ?Sized>(
    storage: &mut S,
    actor: &automerge::ActorId,
    reference: &ReferenceData,
    user: Uuid,
) -> Result<(User, User), Error> {
    change_user_in(storage, actor, reference, user, &|record| {
        record.active = false;
        Ok(())
    })
}

/// The areas a user's devices sync with: none once the user is deactivated (what the devices
/// hold leaves them, after their pending changes are pushed and kept for review).
pub(crate) fn areas_in_force(user: &User) -> std::collections::BTreeSet<String> {
    if user.active {
        user.areas.clone()
    } else {
        Default::default()
    }
}

/// Reissues `device`'s token (`reissue`: the registry's own, its keys unbound), then
/// supersedes the certificate its old store holds for the peers it meets
/// (`vigie_core::sync::supersede_reissued`). The token is the administrator's either way: a
/// failure of the second step is said, and the old certificate runs out as before (60 days at
/// most).
pub(crate) fn reissue_superseding(
    certifier: &Certifier<'_>,
    device: Uuid,
    reissue: impl FnOnce() -> Result<Token, AuthError>,
) -> Result<Token, AuthError> {
    let held = certifier
        .registry
        .devices()
        .ok()
        .and_then(|devices| devices.into_iter().find(|d| d.device == device))
        .and_then(|d| d.certificate);
    let token = reissue()?;
    let Some(held) = held else {
        return Ok(token);
    };
    let now = chrono::Utc::now().timestamp_millis();
    if let Err(e) = vigie_core::sync::supersede_reissued(certifier, device, &held, now) {
        tracing::warn!(
            device = %device,
            error = %e,
            "the reissued device's old certificate could not be superseded: its old store \
             stays trusted by its peers until the certificate runs out"
        );
    }
    Ok(token)
}

/// After a user's role, areas or state changed: their devices' certificates say so at once
/// (`recertify_user`), for the peers they meet before they sync again.
pub(crate) fn recertify(certifier: &Certifier<'_>, user: &User) -> Result<(), Error> {
    let now = chrono::Utc::now().timestamp_millis();
    vigie_core::sync::recertify_user(certifier, user.id, user.role, &areas_in_force(user), now)
        .map(|_| ())
}

/// Changes a user's record as the hub's administrator; returns it before and after.
pub(crate) fn change_user_in<S: HubStorage + ?Sized>(
    storage: &mut S,
    actor: &automerge::ActorId,
    reference: &ReferenceData,
    user: Uuid,
    change: &dyn Fn(&mut User) -> Result<(), Error>,
) -> Result<(User, User), Error> {
    let author = crate::ADMIN_AUTHOR;
    storage.in_transaction(&mut |tx| {
        let before = read_record::<User>(tx, user)?.ok_or(Error::NotFound {
            kind: Some(vigie_core::RecordKind::User),
            id: user,
        })?;
        let mut record = before.clone();
        change(&mut record)?;
        let after = update_record(tx, actor, author, reference, &record)?;
        Ok((before, after))
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock rolled back its transaction on unwind: the data is sound.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How many connections of the embedded hub only read (pull-only syncs, authentication).
const READERS: usize = 4;

/// The embedded hub: one SQLite store (its own connection writes; readers beside it serve the
/// syncs that only read, and the reading part of the others) and one device registry, used by
/// one process.
pub struct Embedded {
    /// The one writer. A fair lock: a push of thousands of records commits in short batches,
    /// one transaction each, and with a plain mutex the pushing thread took the lock back
    /// between two batches before a waiting sync had woken up; a small sync waited 100 to 700
    /// ms behind a 5,000-record push (`vigie-bench busy-hub`). Handed over in turn, it waits
    /// for at most the batch under way.
    store: FairMutex<Store>,
    readers: Readers,
    registry: Mutex<Registry>,
    /// The store's file and key, for the console's own connection to it.
    file: (std::path::PathBuf, vigie_core::Encryption),
    /// The hub's signing key, kept in its store (created on first start).
    key: HubKey,
    /// What each device may still push of changes.
    allowances: Arc<vigie_core::sync::DeviceAllowances>,
}

/// The embedded registry behind its lock, as device identity reads it (one lock per call, so
/// that certifying never holds the registry during a sync).
struct LockedRegistry<'a>(&'a Mutex<Registry>);

fn registry_error(e: AuthError) -> Error {
    match e {
        // As the store's own full disk is told (`http`: 503 and a time to come back).
        AuthError::DiskFull => Error::Io(std::io::ErrorKind::StorageFull.into()),
        e => Error::HubStorage {
            reason: e.to_string(),
            retryable: false,
        },
    }
}

impl DeviceRegistry for LockedRegistry<'_> {
    fn devices(&self) -> Result<Vec<RegisteredDevice>, Error> {
        lock(self.0).identities().map_err(registry_error)
    }

    fn keep_certificate(
        &self,
        device: Uuid,
        certificate: &[u8],
        replacing: Option<&[u8]>,
    ) -> Result<bool, Error> {
        lock(self.0)
            .keep_certificate(device, certificate, replacing)
            .map_err(registry_error)
    }
}

impl Embedded {
    fn recertify(&self, user: &User) -> Result<(), Error> {
        let registry = LockedRegistry(&self.registry);
        let certifier = Certifier {
            key: &self.key,
            registry: &registry,
        };
        recertify(&certifier, user)
    }

    pub fn new(
        mut store: Store,
        registry: Registry,
        encryption: vigie_core::Encryption,
    ) -> Result<Embedded, Error> {
        let key = store.hub_key()?;
        Ok(Embedded {
            file: (store.path().to_path_buf(), encryption),
            key,
            readers: Readers {
                idle: Mutex::new(Vec::new()),
                returned: Condvar::new(),
                opened: Mutex::new(0),
                max: READERS,
            },
            store: FairMutex::new(store),
            registry: Mutex::new(registry),
            allowances: Default::default(),
        })
    }

    /// Runs `work` on a reader, opened on first need.
    fn read<T>(&self, work: impl FnOnce(&mut HubReader) -> Result<T, Error>) -> Result<T, Error> {
        let mut reader = self.readers.take(&self.store)?;
        let outcome = work(&mut reader);
        self.readers.give_back(reader);
        outcome
    }
}

/// The readers of the embedded store: at most `max`, each used by one request at a time.
struct Readers {
    idle: Mutex<Vec<HubReader>>,
    returned: Condvar,
    opened: Mutex<usize>,
    max: usize,
}

impl Readers {
    fn take(&self, store: &FairMutex<Store>) -> Result<HubReader, Error> {
        let mut idle = lock(&self.idle);
        loop {
            if let Some(reader) = idle.pop() {
                return Ok(reader);
            }
            let mut opened = lock(&self.opened);
            if *opened < self.max {
                *opened += 1;
                drop(opened);
                drop(idle);
                let reader = store.lock().hub_reader();
                if reader.is_err() {
                    *lock(&self.opened) -= 1;
                }
                return reader;
            }
            drop(opened);
            idle = self
                .returned
                .wait(idle)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn give_back(&self, reader: HubReader) {
        lock(&self.idle).push(reader);
        self.returned.notify_one();
    }
}

/// The embedded hub as the sync engine's storage: writes on the store's connection, reads on
/// a reader.
struct EmbeddedStorage<'a> {
    hub: &'a Embedded,
}

impl HubStorage for EmbeddedStorage<'_> {
    fn in_transaction<T>(
        &mut self,
        work: &mut dyn FnMut(&mut dyn HubTransaction) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.hub.store.lock().in_transaction(work)
    }

    fn in_read_transaction<T>(
        &mut self,
        work: &mut dyn FnMut(&mut dyn HubTransaction) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.hub.read(|reader| reader.in_transaction(work))
    }

    fn allowances(&self) -> Option<Arc<vigie_core::sync::DeviceAllowances>> {
        Some(self.hub.allowances.clone())
    }
}

impl Backend for Embedded {
    fn concurrency(&self) -> usize {
        // Readers, the writer, and a thread to authenticate the next request meanwhile.
        READERS + 2
    }

    fn console(&self) -> &dyn ConsoleStorage {
        &self.registry
    }

    fn console_form_key(&self) -> [u8; 32] {
        crate::console::session::form_key(&self.key.to_bytes()[..])
    }

    fn open_view(&self) -> Result<View, Error> {
        // The hub's own file: it holds the index rows already. This connection only reads.
        let (path, encryption) = &self.file;
        let config = vigie_core::StoreConfig::new(path, encryption.clone(), crate::HUB_ADMIN)
            .role(vigie_core::StoreRole::Hub);
        Ok(View {
            store: Store::open(config.clone())?,
            cursor: 0,
            scratch: None,
            reopen: config,
        })
    }

    fn refresh_view(&self, _view: &mut View) -> Result<(), Error> {
        // The same file: each read sees the last commit.
        Ok(())
    }

    fn write(
        &self,
        work: &mut dyn FnMut(&mut dyn HubTransaction) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut store = self.store.lock();
        store.in_transaction(work)?;
        store.purge_freed_content()
    }

    fn actor(&self) -> automerge::ActorId {
        self.store.lock().actor().clone()
    }

    fn wipe_order(&self, device: Uuid) -> String {
        self.key.wipe_order(device)
    }
    fn authenticate(&self, token: &Token) -> Result<Uuid, AuthError> {
        lock(&self.registry).authenticate(token)
    }

    fn enrol_device(&self, user: Uuid, device: Uuid) -> Result<Option<Token>, AuthError> {
        lock(&self.registry).enrol_device(user, device)
    }

    fn revoke(&self, device: Uuid) -> Result<bool, AuthError> {
        lock(&self.registry).revoke(device)
    }

    fn revoked_unknown(&self, device: Uuid) -> Result<(), AuthError> {
        lock(&self.registry).revoked_unknown(device)
    }

    fn devices(&self) -> Result<Vec<DeviceInfo>, AuthError> {
        lock(&self.registry).devices()
    }

    fn reissue(&self, device: Uuid) -> Result<Token, AuthError> {
        let registry = LockedRegistry(&self.registry);
        let certifier = Certifier {
            key: &self.key,
            registry: &registry,
        };
        reissue_superseding(&certifier, device, || lock(&self.registry).reissue(device))
    }

    fn user(&self, id: Uuid) -> Result<Option<User>, Error> {
        self.read(|reader| reader.in_transaction(&mut |tx| read_record::<User>(tx, id)))
    }

    fn users(&self) -> Result<Vec<User>, Error> {
        // On a reader: pages that name users (users, devices, the audit log, a record's
        // history) held the writer, and phones' pushes waited behind them.
        self.read(|reader| reader.users())
    }

    fn add_user(&self, user: &User) -> Result<User, Error> {
        self.store.lock().create(user)
    }

    fn sync(
        &self,
        who: &Principal,
        request: &[u8],
        limits: &HubLimits,
    ) -> Result<Vec<u8>, HubError> {
        let registry = LockedRegistry(&self.registry);
        let certifier = Certifier {
            key: &self.key,
            registry: &registry,
        };
        handle_certified_sync(
            &mut EmbeddedStorage { hub: self },
            who,
            request,
            limits,
            Some(&certifier),
        )
    }

    fn import_bundle(&self, bytes: &[u8], limits: &HubLimits) -> Result<HubBundleReport, HubError> {
        let registry = LockedRegistry(&self.registry);
        let certifier = Certifier {
            key: &self.key,
            registry: &registry,
        };
        import_hub_bundle(
            &mut EmbeddedStorage { hub: self },
            &certifier,
            &|certificate| bundle_exporter(self, &registry, certificate),
            bytes,
            limits,
        )
    }

    fn attachment(
        &self,
        who: &Principal,
        request: &[u8],
        limits: &HubLimits,
    ) -> Result<Vec<u8>, HubError> {
        handle_attachment(&mut EmbeddedStorage { hub: self }, who, request, limits)
    }

    fn erase(&self, by: Uuid, record: Uuid) -> Result<ErasedRecords, Error> {
        erase_in(&mut *self.store.lock(), by, record)
    }

    fn purge_erased(&self) -> Result<(), Error> {
        self.store.lock().purge_freed_content()
    }

    fn quarantined(&self) -> Result<Vec<QuarantineView>, Error> {
        self.read(quarantined_in)
    }

    fn received_times(&self, id: Uuid) -> Result<HashMap<ChangeHash, i64>, Error> {
        self.read(|storage| received_in(storage, id))
    }

    fn erasures(&self) -> Result<Vec<(Uuid, i64)>, Error> {
        self.read(|storage| storage.in_transaction(&mut |tx| tx.erasures()))
    }

    fn review_quarantined(
        &self,
        entry: i64,
        accept: bool,
        by: Option<Uuid>,
    ) -> Result<bool, Error> {
        let mut store = self.store.lock();
        let reference = store.reference();
        let actor = store.actor().clone();
        let revoked = revoked_devices(self)?;
        let reviewed = review_in(
            &mut *store,
            &actor,
            &reference,
            (entry, accept, by),
            &revoked,
        )?;
        // A rejected entry's content leaves the files at once, as an erasure's does (it stayed
        // in the write-ahead log until the hub stopped).
        store.purge_freed_content()?;
        Ok(reviewed)
    }

    fn reference(&self) -> Result<Arc<ReferenceData>, Error> {
        Ok(self.store.lock().reference())
    }

    fn publish_references(&self, files: &[ReferenceFile]) -> Result<Vec<u32>, Error> {
        let files: Vec<_> = files
            .iter()
            .map(|f| (f.key.clone(), f.content.clone()))
            .collect();
        self.store.lock().publish_references(&files)
    }

    fn set_user_areas(&self, user: Uuid, areas: &[String]) -> Result<User, Error> {
        let after = {
            let mut store = self.store.lock();
            let actor = store.actor().clone();
            let reference = store.reference().clone();
            set_areas_in(&mut *store, &actor, &reference, user, areas)?
        };
        self.recertify(&after)?;
        Ok(after)
    }

    fn deactivate_user(&self, user: Uuid) -> Result<bool, Error> {
        let (before, after) = {
            let mut store = self.store.lock();
            let actor = store.actor().clone();
            let reference = store.reference().clone();
            deactivate_in(&mut *store, &actor, &reference, user)?
        };
        self.recertify(&after)?;
        Ok(before.active)
    }

    fn change_user(
        &self,
        user: Uuid,
        change: &dyn Fn(&mut User) -> Result<(), Error>,
    ) -> Result<(User, User), Error> {
        let (before, after) = {
            let mut store = self.store.lock();
            let actor = store.actor().clone();
            let reference = store.reference().clone();
            change_user_in(&mut *store, &actor, &reference, user, change)?
        };
        self.recertify(&after)?;
        Ok((before, after))
    }
}

//! `VigieStore`: one encrypted store file, shared safely between the app's threads.
//!
//! The core's `Store` is `Send` but not `Sync`: it lives behind a mutex, so calls from several
//! threads are served one at a time. Every method blocks on SQLite (and `sync_with` on the
//! app's transport too): call them off the UI thread.

use crate::error::{Result, VigieError};
use crate::listeners::{
    ChangeListener, ChangeSource, Listeners, RecordChange, Removal, SyncProgressListener, guarded,
};
use crate::monitoring::VisitReview;
use crate::types::{
    self, AreaFilter, BundleExport, BundleReport, ChildCase, ChildCaseQuery, ChildCaseSummary,
    DueItem, FieldConflict, FollowUp, HistoryEntry, Page, Referral, SearchHit, SyncReport,
    SyncSummary, User, UserProfile, Visit, VisitQuery, VisitSummary, Workplace, WorkplaceQuery,
    WorkplaceSummary, parse_date, parse_id,
};
use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use uuid::Uuid;
use vigie_core::sync::wire::{self, PushOutcome};
use vigie_core::sync::{PeerScope, SyncOptions, sync_with_hub};
use vigie_core::{CaseStatus, Encryption, Record, RecordKind, Store, StoreConfig};

/// The app's carrier of sync messages to the hub (HTTP, usually: `POST <hub>/v1/sync` with
/// `Authorization: Bearer <enrolment token>` and `Content-Type: application/octet-stream`, the
/// request as the body; the response body is what to return).
#[uniffi::export(with_foreign)]
pub trait SyncTransport: Send + Sync {
    /// Carries one request and returns the hub's response. Called on the thread that called
    /// `sync_with`, inside the session: blocking here is expected, calling the store is not.
    fn exchange(&self, request: Vec<u8>) -> std::result::Result<Vec<u8>, crate::TransportError>;
}

/// Opens (creating it if needed) the store file at `path`.
///
/// - `key`: the 32-byte key from the platform keystore (Android Keystore, iOS Keychain). `None`
///   opens an unencrypted file: for tools and tests only.
/// - `user_id`: the user signed in; every change is signed with them and this device.
/// - `device_id`: the device id from the enrolment token (`parse_enrolment_token`). A new file
///   takes it; an existing file must already have it (else `NotAllowed`). `None` gives a new file
///   a random id (a store that never syncs with a hub).
///
/// Blocks: opens and, if needed, migrates the file. A wrong key is `Authentication`.
#[uniffi::export]
pub fn open_store(
    path: String,
    key: Option<Vec<u8>>,
    user_id: String,
    device_id: Option<String>,
) -> Result<Arc<VigieStore>> {
    let encryption =
        match key {
            None => Encryption::Unencrypted,
            Some(key) => Encryption::Key(key.try_into().map_err(|_| {
                VigieError::validation("key", "must be 32 bytes (a raw 256-bit key)")
            })?),
        };
    let user = parse_id("user_id", &user_id)?;
    let device = device_id
        .as_deref()
        .map(|d| parse_id("device_id", d))
        .transpose()?;
    let mut config = StoreConfig::new(path, encryption, user);
    if let Some(device) = device {
        config = config.device(device);
    }
    let store = Store::open(config)?;
    if device.is_some_and(|d| d != store.device_id()) {
        let _ = store.close();
        return Err(VigieError::NotAllowed {
            reason: "this store file belongs to another device".into(),
        });
    }
    Ok(VigieStore::from_core(store))
}

/// An open store. Every method blocks on SQLite: call it off the main thread. Methods may be
/// called from any thread; they are served one at a time.
///
/// The file is closed when the object is released (Kotlin `close()` / `use {}`, Swift `deinit`,
/// Python garbage collection) or by `close_store()`.
#[derive(uniffi::Object)]
pub struct VigieStore {
    store: Mutex<Option<Store>>,
    /// The thread inside the store right now (0: none), to refuse re-entry from a callback
    /// instead of deadlocking.
    owner: AtomicU64,
    listeners: Listeners,
    device_id: String,
    user_id: String,
    /// Closed because its profile was wiped (`Vault.wipe_user`, `wipe_all`).
    wiped: AtomicBool,
}

static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);
thread_local! {
    static THREAD: u64 = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
}

struct Occupied<'a>(&'a AtomicU64);

impl Drop for Occupied<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::SeqCst);
    }
}

impl Drop for VigieStore {
    fn drop(&mut self) {
        let slot = self.store.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(store) = slot.take() {
            let _ = store.close();
        }
    }
}

fn local(id: Uuid, kind: RecordKind) -> RecordChange {
    RecordChange {
        id: id.to_string(),
        kind,
        source: ChangeSource::Local,
        removed: None,
    }
}

impl VigieStore {
    /// The object for an open core store (from `open_store` or a `Vault`).
    pub(crate) fn from_core(store: Store) -> Arc<VigieStore> {
        Arc::new(VigieStore {
            device_id: store.device_id().to_string(),
            user_id: store.user_id().to_string(),
            store: Mutex::new(Some(store)),
            owner: AtomicU64::new(0),
            listeners: Listeners::default(),
            wiped: AtomicBool::new(false),
        })
    }

    /// Takes the core store out, for its profile to be wiped: later calls raise `ProfileWiped`.
    /// The listeners hear of every record it held, as removed.
    pub(crate) fn take_for_wipe(&self) -> Result<Option<Store>> {
        let held = match self.with_store(|s| {
            Ok(if self.listeners.is_empty() {
                Vec::new()
            } else {
                s.records_held()?
            })
        }) {
            Ok(held) => held,
            // Closed already (by `close_store`, or wiped): nothing to take.
            Err(VigieError::Storage { .. } | VigieError::ProfileWiped { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut slot = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        self.wiped.store(true, Ordering::SeqCst);
        let store = slot.take();
        drop(slot);
        let changes: Vec<RecordChange> = held
            .into_iter()
            .map(|(id, kind)| RecordChange {
                id: id.to_string(),
                kind,
                source: ChangeSource::Local,
                removed: Some(Removal::Wiped),
            })
            .collect();
        self.listeners.changed(&changes);
        Ok(store)
    }

    /// Tells the listeners that this store's own calls changed these records.
    pub(crate) fn changed_locally(&self, ids: &[Uuid], kind: RecordKind) {
        self.changed(ids, kind, ChangeSource::Local);
    }

    pub(crate) fn changed(&self, ids: &[Uuid], kind: RecordKind, source: ChangeSource) {
        let changes: Vec<RecordChange> = ids
            .iter()
            .map(|id| RecordChange {
                id: id.to_string(),
                kind,
                source,
                removed: None,
            })
            .collect();
        self.listeners.changed(&changes);
    }

    /// Runs `f` with the store, one caller at a time. A panic in an earlier call left SQLite's
    /// transaction rolled back on unwind, so a poisoned lock is safe to take over.
    pub(crate) fn with_store<T>(&self, f: impl FnOnce(&mut Store) -> Result<T>) -> Result<T> {
        let me = THREAD.with(|t| *t);
        if self.owner.load(Ordering::SeqCst) == me {
            return Err(VigieError::NotAllowed {
                reason: "the store was called from its own transport or progress listener \
                         during a sync session; call it after the session"
                    .into(),
            });
        }
        let mut slot = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        self.owner.store(me, Ordering::SeqCst);
        let _occupied = Occupied(&self.owner);
        let store = slot.as_mut().ok_or_else(|| {
            if self.wiped.load(Ordering::SeqCst) {
                VigieError::ProfileWiped {
                    reason: "this profile was wiped from the device".into(),
                }
            } else {
                VigieError::Storage {
                    reason: "the store is closed".into(),
                }
            }
        })?;
        f(store)
    }

    fn create<R: Record>(&self, record: R) -> Result<R> {
        let stored = self.with_store(|s| Ok(s.create(&record)?))?;
        self.listeners.changed(&[local(stored.id(), R::KIND)]);
        Ok(stored)
    }

    fn update<R: Record>(&self, record: R) -> Result<R> {
        let stored = self.with_store(|s| Ok(s.update(&record)?))?;
        self.listeners.changed(&[local(stored.id(), R::KIND)]);
        Ok(stored)
    }

    fn get<R: Record>(&self, id: &str) -> Result<R> {
        let id = parse_id("id", id)?;
        self.with_store(|s| Ok(s.get::<R>(id)?))
    }

    /// The kinds of records merged from elsewhere, for the change listeners.
    fn received(store: &Store, ids: &[Uuid], source: ChangeSource) -> Vec<RecordChange> {
        ids.iter()
            .filter_map(|id| {
                store.kind_of(*id).ok().map(|kind| RecordChange {
                    id: id.to_string(),
                    kind,
                    source,
                    removed: None,
                })
            })
            .collect()
    }
}

/// The records a hub response brings (empty if it does not decode: applying it fails then).
fn ids_in_response(response: &[u8], options: &SyncOptions) -> Vec<Uuid> {
    let Ok(decoded) = wire::decode_response(response, options.max_decompressed_bytes) else {
        return Vec::new();
    };
    let mut ids: Vec<Uuid> = decoded
        .acks
        .iter()
        .filter(|a| matches!(&a.outcome, PushOutcome::Accepted { catch_up, .. } if !catch_up.is_empty()))
        .map(|a| a.id)
        .collect();
    ids.extend(decoded.records.iter().map(|r| r.id));
    ids
}

fn without_failed(
    ids: Vec<Uuid>,
    failed: &[(Uuid, String)],
    seen: &mut HashSet<Uuid>,
) -> Vec<Uuid> {
    ids.into_iter()
        .filter(|id| !failed.iter().any(|(f, _)| f == id) && seen.insert(*id))
        .collect()
}

#[uniffi::export]
impl VigieStore {
    /// This store's device id (from the enrolment token, or random).
    pub fn device_id(&self) -> String {
        self.device_id.clone()
    }

    /// The user every change is signed with.
    pub fn user_id(&self) -> String {
        self.user_id.clone()
    }

    /// Checkpoints and closes the file now. Any later call raises `Storage`. Releasing the
    /// object does the same.
    pub fn close_store(&self) -> Result<()> {
        let store = {
            self.with_store(|_| Ok(()))?;
            self.store
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
        };
        match store {
            Some(store) => Ok(store.close()?),
            None => Ok(()),
        }
    }

    // ------------------------------------------------------------------------------------------
    // Records. `create_*` stores a new record (an empty id gets one) and returns it as stored,
    // with its version; `update_*` writes the fields that differ from the version read and
    // returns the record as stored now (merged with anything that arrived meanwhile).

    pub fn create_workplace(&self, workplace: Workplace) -> Result<Workplace> {
        Ok(self.create(workplace.into_core()?)?.into())
    }

    pub fn update_workplace(&self, workplace: Workplace) -> Result<Workplace> {
        Ok(self.update(workplace.into_core()?)?.into())
    }

    pub fn get_workplace(&self, id: String) -> Result<Workplace> {
        Ok(self.get::<vigie_core::Workplace>(&id)?.into())
    }

    pub fn create_visit(&self, visit: Visit) -> Result<Visit> {
        Ok(self.create(visit.into_core()?)?.into())
    }

    pub fn update_visit(&self, visit: Visit) -> Result<Visit> {
        Ok(self.update(visit.into_core()?)?.into())
    }

    pub fn get_visit(&self, id: String) -> Result<Visit> {
        Ok(self.get::<vigie_core::Visit>(&id)?.into())
    }

    /// Opens a case for a child (the classification is computed by the store).
    pub fn create_child_case(&self, child_case: ChildCase) -> Result<ChildCase> {
        Ok(self.create(child_case.into_core()?)?.into())
    }

    pub fn update_child_case(&self, child_case: ChildCase) -> Result<ChildCase> {
        Ok(self.update(child_case.into_core()?)?.into())
    }

    pub fn get_child_case(&self, id: String) -> Result<ChildCase> {
        Ok(self.get::<vigie_core::ChildCase>(&id)?.into())
    }

    pub fn create_user(&self, user: User) -> Result<User> {
        Ok(self.create(user.into_core()?)?.into())
    }

    pub fn update_user(&self, user: User) -> Result<User> {
        Ok(self.update(user.into_core()?)?.into())
    }

    pub fn get_user(&self, id: String) -> Result<User> {
        Ok(self.get::<vigie_core::User>(&id)?.into())
    }

    /// The kind of the record with this id.
    pub fn kind_of(&self, id: String) -> Result<RecordKind> {
        let id = parse_id("id", &id)?;
        self.with_store(|s| Ok(s.kind_of(id)?))
    }

    /// Number of records of a kind.
    pub fn count(&self, kind: RecordKind) -> Result<i64> {
        self.with_store(|s| Ok(s.count(kind)? as i64))
    }

    // ------------------------------------------------------------------------------------------
    // Workflow: the core's state machine and the rights of the user's role, as the hub told
    // this store at its last sync (`user_profile`; the app does not say who the user is). A
    // store that never synced takes no workflow step. A step that is not allowed is
    // `NotAllowed`, its `reason` naming the rule (statuses and roles only).

    /// The signed-in user's role and area codes, as the hub told this device at its last sync;
    /// none before the first sync.
    pub fn user_profile(&self) -> Result<Option<UserProfile>> {
        self.with_store(|s| Ok(s.user_profile()?.map(Into::into)))
    }

    /// Moves a case along referred → receiving services → withdrawn | prevented → closed.
    /// Referral is `refer_case`; verification (withdrawn, prevented) and closing are a
    /// supervisor's; an inspector opens and refers cases only. Becoming withdrawn or prevented
    /// records today as `remediated_on` and schedules the first follow-up.
    pub fn transition_case(&self, case_id: String, status: CaseStatus) -> Result<ChildCase> {
        let id = parse_id("case_id", &case_id)?;
        let stored = self.with_store(|s| Ok(s.transition_case(id, status)?))?;
        self.changed_locally(&[id], RecordKind::ChildCase);
        Ok(stored.into())
    }

    /// Records a referral (its `id` is given by the store): an identified case becomes
    /// referred; a case referred or receiving services keeps its status (a further referral).
    pub fn refer_case(&self, case_id: String, referral: Referral) -> Result<ChildCase> {
        let id = parse_id("case_id", &case_id)?;
        let (_, referral) = referral.into_core(0)?;
        let (stored, _) = self.with_store(|s| Ok(s.refer_case(id, referral)?))?;
        self.changed_locally(&[id], RecordKind::ChildCase);
        Ok(stored.into())
    }

    /// Records a follow-up of a case (its `id` is given by the store). Once the case is
    /// remediated, its `next_due` is the rule set's next date after it; before, yours is kept
    /// and puts the case in `follow_ups_due`.
    pub fn add_follow_up(&self, case_id: String, follow_up: FollowUp) -> Result<ChildCase> {
        let id = parse_id("case_id", &case_id)?;
        let (_, follow_up) = follow_up.into_core(0)?;
        let (stored, _) = self.with_store(|s| Ok(s.add_follow_up(id, follow_up)?))?;
        self.changed_locally(&[id], RecordKind::ChildCase);
        Ok(stored.into())
    }

    /// The visitor submits a draft (or a returned) visit for review. Any other is `NotAllowed`.
    pub fn submit_visit(&self, visit_id: String) -> Result<Visit> {
        let id = parse_id("visit_id", &visit_id)?;
        let stored = self.with_store(|s| Ok(s.submit_visit(id)?))?;
        self.changed_locally(&[id], RecordKind::Visit);
        Ok(stored.into())
    }

    /// A supervisor validates a submitted visit, or returns it to its visitor with a comment
    /// (required: else `Validation` on `review_comment`). `reviewed_by` becomes this store's
    /// user.
    pub fn review_visit(&self, visit_id: String, review: VisitReview) -> Result<Visit> {
        let id = parse_id("visit_id", &visit_id)?;
        let review = review.into();
        let stored = self.with_store(|s| Ok(s.review_visit(id, review)?))?;
        self.changed_locally(&[id], RecordKind::Visit);
        Ok(stored.into())
    }

    // ------------------------------------------------------------------------------------------
    // History and conflicts

    /// Who changed which field of a record, and when, oldest first.
    pub fn history(&self, id: String) -> Result<Vec<HistoryEntry>> {
        let id = parse_id("id", &id)?;
        self.with_store(|s| Ok(s.history(id)?.into_iter().map(Into::into).collect()))
    }

    /// The fields of a record that hold concurrent distinct values (after a merge).
    pub fn conflicts(&self, id: String) -> Result<Vec<FieldConflict>> {
        let id = parse_id("id", &id)?;
        self.with_store(|s| Ok(s.conflicts(id)?.into_iter().map(Into::into).collect()))
    }

    /// Settles the conflict at `path` (from `conflicts`) with `value_json`: one of the
    /// conflicting values or a new one, as JSON (`"\"returned\""`). An ordinary edit that syncs.
    pub fn resolve_conflict(
        &self,
        id: String,
        path: Vec<String>,
        value_json: String,
    ) -> Result<()> {
        let id = parse_id("id", &id)?;
        let value: serde_json::Value = serde_json::from_str(&value_json)
            .map_err(|_| VigieError::validation(path.join("."), "must be a JSON value"))?;
        let kind = self.with_store(|s| {
            s.resolve_conflict(id, &path, &value)?;
            Ok(s.kind_of(id)?)
        })?;
        self.listeners.changed(&[local(id, kind)]);
        Ok(())
    }

    // ------------------------------------------------------------------------------------------
    // Queries (from the index: no record is loaded)

    pub fn visits(&self, query: VisitQuery, page: Page) -> Result<Vec<VisitSummary>> {
        let (query, page) = (query.into_core()?, page.into_core()?);
        self.with_store(|s| {
            Ok(s.visits(&query, page)?
                .into_iter()
                .map(Into::into)
                .collect())
        })
    }

    pub fn child_cases(&self, query: ChildCaseQuery, page: Page) -> Result<Vec<ChildCaseSummary>> {
        let (query, page) = (query.into(), page.into_core()?);
        self.with_store(|s| {
            Ok(s.child_cases(&query, page)?
                .into_iter()
                .map(Into::into)
                .collect())
        })
    }

    pub fn workplaces(&self, query: WorkplaceQuery, page: Page) -> Result<Vec<WorkplaceSummary>> {
        let (query, page) = (query.into(), page.into_core()?);
        self.with_store(|s| {
            Ok(s.workplaces(&query, page)?
                .into_iter()
                .map(Into::into)
                .collect())
        })
    }

    /// Follow-ups due before `before` (YYYY-MM-DD; today gives the overdue list), soonest first.
    pub fn follow_ups_due(
        &self,
        area: Option<AreaFilter>,
        assignee_id: Option<String>,
        before: String,
        page: Page,
    ) -> Result<Vec<DueItem>> {
        let assignee = assignee_id
            .as_deref()
            .map(|a| parse_id("assignee_id", a))
            .transpose()?;
        let before = parse_date("before", &before)?;
        let page = page.into_core()?;
        self.with_store(|s| {
            Ok(
                s.follow_ups_due(area.map(Into::into), assignee, before, page)?
                    .into_iter()
                    .map(Into::into)
                    .collect(),
            )
        })
    }

    /// Workplaces and children whose name matches `text`, ignoring case and accents.
    pub fn search_names(&self, text: String, limit: i32) -> Result<Vec<SearchHit>> {
        let limit = u32::try_from(limit)
            .map_err(|_| VigieError::validation("limit", "must not be negative"))?;
        self.with_store(|s| {
            Ok(s.search_names(&text, limit)?
                .into_iter()
                .map(Into::into)
                .collect())
        })
    }

    /// Runs SQLite's integrity check; true when nothing is wrong.
    pub fn integrity_check(&self) -> Result<bool> {
        self.with_store(|s| Ok(s.integrity_check()?))
    }

    // ------------------------------------------------------------------------------------------
    // Sync with the hub

    /// Records waiting to be sent to the hub.
    pub fn hub_outbox_len(&self) -> Result<i64> {
        self.with_store(|s| Ok(types::long(s.hub_outbox_len()?)))
    }

    /// Bytes out: the next request for the hub. Send it with your own client, then pass the
    /// response to `hub_sync_apply`; repeat while the report says `more` (or the outbox is not
    /// empty and the last exchange made progress).
    pub fn hub_sync_request(&self) -> Result<Vec<u8>> {
        self.with_store(|s| Ok(s.hub_sync_request(&SyncOptions::default())?))
    }

    /// Bytes in: applies the hub's response in one transaction. A damaged response is
    /// `DamagedInput`, with nothing stored from it.
    pub fn hub_sync_apply(&self, response: Vec<u8>) -> Result<SyncReport> {
        let options = SyncOptions::default();
        let ids = if self.listeners.is_empty() {
            Vec::new()
        } else {
            ids_in_response(&response, &options)
        };
        let (report, changes) = self.with_store(|s| {
            let report = s.hub_sync_apply(&response, &options)?;
            let ids = without_failed(ids, &report.failed, &mut HashSet::new());
            let mut changes = Self::received(s, &ids, ChangeSource::Hub);
            changes.extend(report.removed.iter().map(RecordChange::removed));
            Ok((report, changes))
        })?;
        self.listeners.changed(&changes);
        Ok(report.into())
    }

    /// One call for a whole session through the app's transport: exchanges until the hub has
    /// nothing more and the outbox nothing it would accept. Blocks for the whole session.
    /// `progress` is told after each exchange (inside the session: it must not call the store).
    /// A transport failure stops the session (`Transport`, or `Authentication` for HTTP 401,
    /// `DeviceRevoked` when the hub revoked the device, `NotAllowed` for another 403); what was
    /// applied stays, and the next session resumes. Records the session removes (erased, out of
    /// the user's scope, quarantined) are told to the change listeners, one call each.
    pub fn sync_with(
        &self,
        transport: Arc<dyn SyncTransport>,
        progress: Option<Arc<dyn SyncProgressListener>>,
    ) -> Result<SyncSummary> {
        let options = SyncOptions::default();
        let track = !self.listeners.is_empty();
        let failure: RefCell<Option<crate::TransportError>> = RefCell::new(None);
        let in_flight: RefCell<Vec<Uuid>> = RefCell::new(Vec::new());
        let applied: RefCell<Vec<Uuid>> = RefCell::new(Vec::new());
        // Records removed by the exchanges applied so far (the summary's list grows).
        let removed: RefCell<Vec<vigie_core::sync::RemovedRecord>> = RefCell::new(Vec::new());
        let (result, changes) = self.with_store(|s| {
            let result = sync_with_hub(
                s,
                &options,
                |request| match transport.exchange(request.to_vec()) {
                    Ok(response) => {
                        if track {
                            *in_flight.borrow_mut() = ids_in_response(&response, &options);
                        }
                        Ok(response)
                    }
                    Err(e) => {
                        let text = e.to_string();
                        *failure.borrow_mut() = Some(e);
                        Err(text)
                    }
                },
                |summary| {
                    // Called once the exchange is applied.
                    applied.borrow_mut().append(&mut in_flight.borrow_mut());
                    *removed.borrow_mut() = summary.removed.clone();
                    if let Some(p) = &progress {
                        let summary = SyncSummary::from(summary.clone());
                        guarded(|| p.on_progress(summary));
                    }
                },
            );
            let failed = match &result {
                Ok(summary) => summary.failed.clone(),
                Err(_) => Vec::new(),
            };
            let ids = without_failed(applied.take(), &failed, &mut HashSet::new());
            let mut changes = Self::received(s, &ids, ChangeSource::Hub);
            changes.extend(removed.take().iter().map(RecordChange::removed));
            Ok((result, changes))
        })?;
        self.listeners.changed(&changes);
        match result {
            Ok(summary) => Ok(summary.into()),
            Err(vigie_core::Error::Transport { reason }) => Err(match failure.take() {
                Some(e) => e.into(),
                None => VigieError::Transport { reason },
            }),
            Err(e) => Err(e.into()),
        }
    }

    // ------------------------------------------------------------------------------------------
    // Bundles (files) and peers (Bluetooth, Wi-Fi Direct, ...)

    /// Exports every record (in `areas`, if any) changed after `since` (0: everything). Keep
    /// the returned `mark` and pass it as `since` next time.
    pub fn export_bundle(&self, since: i64, areas: Vec<AreaFilter>) -> Result<BundleExport> {
        let areas: Vec<vigie_core::AreaFilter> = areas.into_iter().map(Into::into).collect();
        // Sealed to the hub and to the devices of the areas exported (the sealed-bundle API
        // comes to the bindings with their redesign).
        let mut recipients = vec![vigie_core::sync::Recipient::Hub];
        recipients.extend(
            areas
                .iter()
                .map(|a| vigie_core::sync::Recipient::Area(a.level_and_code().1.to_string())),
        );
        let (bytes, mark) =
            self.with_store(|s| Ok(s.export_bundle(since, &areas, &recipients)?))?;
        Ok(BundleExport { bytes, mark })
    }

    /// Imports a bundle whole, or nothing of it (`DamagedInput` says which record failed).
    pub fn import_bundle(&self, bytes: Vec<u8>) -> Result<BundleReport> {
        let report = self.with_store(|s| Ok(s.import_bundle(&bytes)?))?;
        self.listeners
            .bulk(ChangeSource::Bundle, types::long(report.changed));
        Ok(report.into())
    }

    /// Starts a peer session as the side that initiates; send `message` to the other device,
    /// then feed each reply to `peer_step` until it returns nothing.
    pub fn peer_start(&self, areas: Vec<AreaFilter>) -> Result<PeerStart> {
        let scope = peer_scope(areas);
        let (session, message) = self
            .with_store(|s| Ok(s.peer_start(&scope, SyncOptions::default().max_message_bytes)?))?;
        Ok(PeerStart {
            session: Arc::new(PeerSession {
                inner: Mutex::new(session),
            }),
            message,
        })
    }

    /// Starts a peer session as the side that answers: feed it the initiator's messages with
    /// `peer_step` and send back each reply.
    pub fn peer_accept(&self, areas: Vec<AreaFilter>) -> Result<Arc<PeerSession>> {
        let scope = peer_scope(areas);
        let session = self
            .with_store(|s| Ok(s.peer_accept(&scope, SyncOptions::default().max_message_bytes)?))?;
        Ok(Arc::new(PeerSession {
            inner: Mutex::new(session),
        }))
    }

    /// Handles a message from the other device; returns the reply to send, or nothing when the
    /// session is complete. A damaged message is `DamagedInput` or `Transport`.
    pub fn peer_step(
        &self,
        session: Arc<PeerSession>,
        message: Vec<u8>,
    ) -> Result<Option<Vec<u8>>> {
        let mut session = session.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let before = session.received;
        let reply = self.with_store(|s| Ok(s.peer_step(&mut session, &message)?))?;
        let received = session.received - before;
        drop(session);
        self.listeners
            .bulk(ChangeSource::Peer, types::long(received));
        Ok(reply)
    }

    // ------------------------------------------------------------------------------------------
    // Listeners

    /// Registers a listener told of every change after it is committed; returns a token for
    /// `remove_change_listener`.
    pub fn add_change_listener(&self, listener: Arc<dyn ChangeListener>) -> i64 {
        self.listeners.add(listener)
    }

    /// Removes a listener; false if the token was not registered.
    pub fn remove_change_listener(&self, token: i64) -> bool {
        self.listeners.remove(token)
    }
}

fn peer_scope(areas: Vec<AreaFilter>) -> PeerScope {
    PeerScope {
        areas: areas.into_iter().map(Into::into).collect(),
    }
}

/// One side of a peer-to-peer session (see `VigieStore.peer_start` / `peer_accept`).
#[derive(uniffi::Object)]
pub struct PeerSession {
    inner: Mutex<vigie_core::sync::PeerSession>,
}

#[uniffi::export]
impl PeerSession {
    /// Nothing more to send or receive.
    pub fn is_finished(&self) -> bool {
        self.lock().is_finished()
    }

    /// Records received and merged so far.
    pub fn received(&self) -> i64 {
        types::long(self.lock().received)
    }

    /// Records sent so far.
    pub fn sent(&self) -> i64 {
        types::long(self.lock().sent)
    }
}

impl PeerSession {
    fn lock(&self) -> std::sync::MutexGuard<'_, vigie_core::sync::PeerSession> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A started peer session and the first message to send.
#[derive(uniffi::Record)]
pub struct PeerStart {
    pub session: Arc<PeerSession>,
    pub message: Vec<u8>,
}

#[cfg(feature = "test-hooks")]
#[uniffi::export]
impl VigieStore {
    /// Test hook (feature `test-hooks` only): panics while holding the store, to prove that
    /// the panic becomes an exception and that the store stays usable afterwards.
    pub fn debug_panic_holding_store(&self, message: String) -> Result<()> {
        self.with_store(|_| -> Result<()> { panic!("{message}") })
    }

    /// Test hook (feature `test-hooks` only): the store acts as `role` in `areas`, as if the
    /// hub had said so at a sync, for the suites that exercise the workflow without a hub.
    pub fn debug_assume_role(&self, role: vigie_core::Role, areas: Vec<String>) -> Result<()> {
        self.with_store(|s| {
            Ok(s.debug_assume_profile(&vigie_core::sync::UserProfile { role, areas })?)
        })
    }
}

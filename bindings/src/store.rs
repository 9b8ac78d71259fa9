//! `VigieStore`: one encrypted store file, shared safely between the app's threads.
//!
//! The core's `Store` is `Send` but not `Sync`: it lives behind a mutex, so calls from several
//! threads are served one at a time. Every method blocks on SQLite (and `sync_with` on the
//! app's transport too): call them off the UI thread.

use crate::error::{Result, VigieError};
use crate::input;
use crate::listeners::{ChangeListener, ChangeSource, Listeners, RecordChange, Removal};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use uuid::Uuid;
use vigie_core::ffi::FieldValue;
use vigie_core::{
    Alert, AreaFilter, CaseStatus, ChildCase, ChildCaseQuery, ChildCaseSummary, Conflict, DueItem,
    Encryption, FollowUp, HistoryEntry, Page, Record, RecordKind, Referral, Review, SearchHit,
    Store, StoreConfig, User, UserProfile, Visit, VisitQuery, VisitSummary, Workplace,
    WorkplaceQuery, WorkplaceSummary,
};

/// Opens (creating it if needed) the store file at `path`, encrypted with `key`.
///
/// - `key`: the 32-byte key from the platform keystore (Android Keystore, iOS Keychain).
/// - `user_id`: the user signed in; every change is signed with them and this device.
/// - `device_id`: the device id from the enrolment token (`parse_enrolment_token`). A new file
///   takes it; an existing file must already have it (else `NotAllowed`). None gives a new file
///   a random id (a store that never syncs with a hub).
///
/// Blocks: opens and, if needed, migrates the file. A wrong key is `Authentication`.
#[uniffi::export(default(device_id = None))]
pub fn open_store(
    path: String,
    key: Vec<u8>,
    user_id: String,
    device_id: Option<String>,
) -> Result<Arc<VigieStore>> {
    let key = key
        .try_into()
        .map_err(|_| VigieError::validation("key", "must be 32 bytes (a raw 256-bit key)"))?;
    open(path, Encryption::Key(key), &user_id, device_id.as_deref())
}

/// Opens (creating it if needed) an unencrypted store file at `path`: for tools and tests only,
/// never for a child's records on a phone. An encrypted file does not open this way
/// (`Authentication`).
#[uniffi::export(default(device_id = None))]
pub fn open_unencrypted_store(
    path: String,
    user_id: String,
    device_id: Option<String>,
) -> Result<Arc<VigieStore>> {
    open(
        path,
        Encryption::Unencrypted,
        &user_id,
        device_id.as_deref(),
    )
}

fn open(
    path: String,
    encryption: Encryption,
    user_id: &str,
    device_id: Option<&str>,
) -> Result<Arc<VigieStore>> {
    let user = input::id("user_id", user_id)?;
    let device = input::id_arg_opt("device_id", device_id)?;
    let file = file_of(&path);
    let path_opened = path.clone();
    let mut config = StoreConfig::new(path, encryption, user);
    if let Some(device) = device {
        config = config.device(device);
    }
    let mut open_files = OPEN_FILES.lock().unwrap_or_else(PoisonError::into_inner);
    open_files.retain(|(_, store)| store.upgrade().is_some_and(|s| s.is_open()));
    if open_files.iter().any(|(open, _)| *open == file) {
        return Err(VigieError::NotAllowed {
            reason: "this store's file is open already in this app: share that store object \
                     (its calls are served one at a time, from any thread), or close it first"
                .into(),
        });
    }
    let store = VigieStore::from_core(Store::open(config)?);
    // Known as the file itself now that it exists.
    open_files.push((file_of(&path_opened), Arc::downgrade(&store)));
    Ok(store)
}

/// The store files this app holds open (`open`): a second object on one file would run its
/// own sync sessions beside the first's, each sending the same records, and the listeners of
/// one would hear nothing of the other's writes.
static OPEN_FILES: Mutex<Vec<(StoreFile, std::sync::Weak<VigieStore>)>> = Mutex::new(Vec::new());

/// A store file as `OPEN_FILES` knows it: once it exists, the file itself (its device and
/// inode: a symbolic or hard link to it, or its name in other letters' case on a volume that
/// ignores case, is the same file; a path compared as written let a link open it twice), else
/// its path, its directory resolved (links, `..`).
#[derive(PartialEq, Eq)]
enum StoreFile {
    #[cfg_attr(not(unix), allow(dead_code))]
    Inode {
        device: u64,
        inode: u64,
    },
    Path(std::path::PathBuf),
}

fn file_of(path: &str) -> StoreFile {
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::MetadataExt;
        return StoreFile::Inode {
            device: meta.dev(),
            inode: meta.ino(),
        };
    }
    let path = std::path::Path::new(path);
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => std::path::Path::new("."),
    };
    StoreFile::Path(match (std::fs::canonicalize(dir), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => path.to_path_buf(),
    })
}

/// An open store. Every method blocks on SQLite: call it off the main thread. Methods may be
/// called from any thread; they are served one at a time.
///
/// The file is closed when the object is released (Kotlin `close()` / `use {}`, Swift `deinit`,
/// Python garbage collection or `with`) or by `close_store()`.
#[derive(uniffi::Object)]
pub struct VigieStore {
    store: Mutex<Option<Store>>,
    /// The thread inside the store right now (0: none), to refuse re-entry from a callback
    /// instead of deadlocking.
    owner: AtomicU64,
    pub(crate) listeners: Listeners,
    device_id: String,
    user_id: String,
    /// Closed because its profile was wiped (`Vault.wipe_user`, `wipe_all`).
    wiped: AtomicBool,
    /// One sync session at a time (`sync_with`): the store is free between a session's steps,
    /// and two sessions side by side would each send and fetch the same records and bytes.
    pub(crate) session: Mutex<()>,
    /// The thread running a session (0: none): a session started from its own transport or
    /// listener is refused rather than waiting for itself.
    pub(crate) session_owner: AtomicU64,
    /// The vault that opened it, if one did: its other profiles the hub revoked are wiped
    /// after this store's syncs (`Vault::wipe_revoked`).
    pub(crate) vault: Mutex<std::sync::Weak<crate::vault::Vault>>,
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
            session: Mutex::new(()),
            session_owner: AtomicU64::new(0),
            vault: Mutex::new(std::sync::Weak::new()),
        })
    }

    /// Takes the core store out, for its profile to be wiped: later calls raise `ProfileWiped`.
    /// With what its listeners are to hear of it (`tell`): every record it held, removed.
    pub(crate) fn take_for_wipe(&self) -> Result<(Option<Store>, Vec<RecordChange>)> {
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
        let store = self.take_wiped();
        let changes: Vec<RecordChange> = held
            .into_iter()
            .map(|(id, kind)| RecordChange::removed(id, kind, ChangeSource::Local, Removal::Wiped))
            .collect();
        Ok((store, changes))
    }

    /// Tells the store's listeners of `changes`.
    pub(crate) fn tell(&self, changes: &[RecordChange]) {
        self.listeners.changed(changes);
    }

    /// Whether the store is open (neither closed nor wiped), without waiting for a call under
    /// way (which means it is).
    pub(crate) fn is_open(&self) -> bool {
        match self.store.try_lock() {
            Ok(slot) => slot.is_some(),
            Err(std::sync::TryLockError::Poisoned(slot)) => slot.into_inner().is_some(),
            Err(std::sync::TryLockError::WouldBlock) => true,
        }
    }

    /// Runs `session` as this store's only sync session: one started on another thread waits
    /// for it; one started from its own transport or listener is refused.
    pub(crate) fn one_session<T>(&self, session: impl FnOnce() -> Result<T>) -> Result<T> {
        let me = THREAD.with(|t| *t);
        if self.session_owner.load(Ordering::SeqCst) == me {
            return Err(VigieError::NotAllowed {
                reason: "a sync session of this store is under way on this thread (its \
                         transport or a listener): start another once it returns"
                    .into(),
            });
        }
        let _one = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        self.session_owner.store(me, Ordering::SeqCst);
        let _running = Occupied(&self.session_owner);
        session()
    }

    /// Takes the core store out, its profile wiped: later calls raise `ProfileWiped`.
    pub(crate) fn take_wiped(&self) -> Option<Store> {
        let mut slot = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        self.wiped.store(true, Ordering::SeqCst);
        slot.take()
    }

    /// Tells the listeners that these records changed, from `source`.
    pub(crate) fn changed(&self, ids: &[Uuid], kind: RecordKind, source: ChangeSource) {
        let changes: Vec<RecordChange> = ids
            .iter()
            .map(|id| RecordChange::of(*id, kind, source))
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

    /// Runs a write on one record of this store's own, and tells the listeners.
    fn local<T>(
        &self,
        id: Uuid,
        kind: RecordKind,
        write: impl FnOnce(&mut Store) -> vigie_core::Result<T>,
    ) -> Result<T> {
        let written = self.with_store(|s| Ok(write(s)?))?;
        self.changed(&[id], kind, ChangeSource::Local);
        Ok(written)
    }

    fn create<R: Record>(&self, record: R) -> Result<R> {
        let record = input::record(record)?;
        let stored = self.with_store(|s| Ok(s.create(&record)?))?;
        self.changed(&[stored.id()], R::KIND, ChangeSource::Local);
        Ok(stored)
    }

    fn update<R: Record>(&self, record: R) -> Result<R> {
        let record = input::record(record)?;
        self.local(record.id(), R::KIND, |s| s.update(&record))
    }

    fn get<R: Record>(&self, id: &str) -> Result<R> {
        let id = input::id("id", id)?;
        self.with_store(|s| Ok(s.get::<R>(id)?))
    }
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

    /// Checkpoints and closes the file now; the object stays, and any later call raises
    /// `Storage`. Releasing the object closes the file too, and the object is gone: a call on
    /// it then is the language's error for a released object (Kotlin `IllegalStateException`
    /// after `close()` or `use {}`), not a `VigieError`. Closing a closed store does nothing,
    /// as for a file: a store closed already, or whose profile was wiped (by the app, or on the
    /// hub's revocation). The file is closed even when this raises: a `Storage` error says the
    /// last checkpoint could not run (a full disk), and what was written is kept (the next
    /// open folds the write-ahead log in).
    pub fn close_store(&self) -> Result<()> {
        let store = {
            match self.with_store(|_| Ok(())) {
                Err(VigieError::ProfileWiped { .. }) => return Ok(()),
                Err(VigieError::Storage { .. })
                    if self
                        .store
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .is_none() =>
                {
                    return Ok(());
                }
                other => other?,
            }
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
    // returns the record as stored now (merged with anything that arrived meanwhile). A record
    // with no version (built from a form rather than read) is `Validation` on `version`.

    pub fn create_workplace(&self, workplace: Workplace) -> Result<Workplace> {
        self.create(workplace)
    }

    pub fn update_workplace(&self, workplace: Workplace) -> Result<Workplace> {
        self.update(workplace)
    }

    pub fn get_workplace(&self, id: String) -> Result<Workplace> {
        self.get(&id)
    }

    pub fn create_visit(&self, visit: Visit) -> Result<Visit> {
        self.create(visit)
    }

    pub fn update_visit(&self, visit: Visit) -> Result<Visit> {
        self.update(visit)
    }

    pub fn get_visit(&self, id: String) -> Result<Visit> {
        self.get(&id)
    }

    /// Opens a case for a child (the classification is computed by the store).
    pub fn create_child_case(&self, child_case: ChildCase) -> Result<ChildCase> {
        self.create(child_case)
    }

    pub fn update_child_case(&self, child_case: ChildCase) -> Result<ChildCase> {
        self.update(child_case)
    }

    pub fn get_child_case(&self, id: String) -> Result<ChildCase> {
        self.get(&id)
    }

    pub fn get_user(&self, id: String) -> Result<User> {
        self.get(&id)
    }

    /// The kind of the record with this id.
    pub fn kind_of(&self, id: String) -> Result<RecordKind> {
        let id = input::id("id", &id)?;
        self.with_store(|s| Ok(s.kind_of(id)?))
    }

    /// Number of records of a kind.
    pub fn count(&self, kind: RecordKind) -> Result<i64> {
        self.with_store(|s| Ok(i64::try_from(s.count(kind)?).unwrap_or(i64::MAX)))
    }

    // ------------------------------------------------------------------------------------------
    // Workflow: the core's state machine and the rights of the user's role, as the hub told
    // this store at its last sync (`user_profile`; the app does not say who the user is). A
    // store that never synced takes no workflow step. A step that is not allowed is
    // `NotAllowed`, its `reason` naming the rule (statuses and roles only).

    /// The signed-in user's role and area codes, as the hub told this device at its last sync;
    /// none before the first sync.
    pub fn user_profile(&self) -> Result<Option<UserProfile>> {
        self.with_store(|s| Ok(s.user_profile()?))
    }

    /// Moves a case along referred → receiving services → withdrawn | prevented → closed, or
    /// reopens it (withdrawn, prevented or closed → identified: a child found working again).
    /// Referral is `refer_case`; verification (withdrawn, prevented), closing and reopening are
    /// a supervisor's; an inspector opens and refers cases only. Becoming withdrawn or prevented
    /// records today (the phone's day, in its zone, by which its user's dates are judged) as
    /// `remediated_on` and schedules the first follow-up; closing needs a follow-up after that
    /// day that found the child not working.
    pub fn transition_case(&self, case_id: String, status: CaseStatus) -> Result<ChildCase> {
        let id = input::id("case_id", &case_id)?;
        self.local(id, RecordKind::ChildCase, |s| s.transition_case(id, status))
    }

    /// `transition_case` on the calendar day `on` (`YYYY-MM-DD`): the day it was made on
    /// paper, which a verification records as `remediated_on`.
    pub fn transition_case_on(
        &self,
        case_id: String,
        status: CaseStatus,
        on: String,
    ) -> Result<ChildCase> {
        let id = input::id("case_id", &case_id)?;
        let on = input::date("on", &on)?;
        self.local(id, RecordKind::ChildCase, |s| {
            s.transition_case_on(id, status, on)
        })
    }

    /// Records a referral (under a key the store gives it): an identified case becomes
    /// referred; a case referred or receiving services keeps its status (a further referral).
    pub fn refer_case(&self, case_id: String, referral: Referral) -> Result<ChildCase> {
        let id = input::id("case_id", &case_id)?;
        let referral = input::value("referral", referral)?;
        self.local(id, RecordKind::ChildCase, |s| {
            Ok(s.refer_case(id, referral)?.0)
        })
    }

    /// Records a follow-up of a case (under a key the store gives it). Once the case is
    /// remediated, its `next_due` is the rule set's next date after it; before, yours is kept
    /// and puts the case in `follow_ups_due`.
    pub fn add_follow_up(&self, case_id: String, follow_up: FollowUp) -> Result<ChildCase> {
        let id = input::id("case_id", &case_id)?;
        let follow_up = input::value("follow_up", follow_up)?;
        self.local(id, RecordKind::ChildCase, |s| {
            Ok(s.add_follow_up(id, follow_up)?.0)
        })
    }

    /// The visitor submits a draft (or a returned) visit for review. Any other is `NotAllowed`.
    pub fn submit_visit(&self, visit_id: String) -> Result<Visit> {
        let id = input::id("visit_id", &visit_id)?;
        self.local(id, RecordKind::Visit, |s| s.submit_visit(id))
    }

    /// A supervisor validates a submitted visit, or returns it to its visitor with a comment
    /// (required: else `Validation` on `review_comment`). `reviewed_by` becomes this store's
    /// user.
    pub fn review_visit(&self, visit_id: String, review: Review) -> Result<Visit> {
        let id = input::id("visit_id", &visit_id)?;
        self.local(id, RecordKind::Visit, |s| s.review_visit(id, review))
    }

    // ------------------------------------------------------------------------------------------
    // History and conflicts

    /// Who changed which field of a record, and when, oldest first.
    pub fn history(&self, id: String) -> Result<Vec<HistoryEntry>> {
        let id = input::id("id", &id)?;
        self.with_store(|s| Ok(s.history(id)?))
    }

    /// The fields of a record that hold concurrent distinct values (after a merge).
    pub fn conflicts(&self, id: String) -> Result<Vec<Conflict>> {
        let id = input::id("id", &id)?;
        self.with_store(|s| Ok(s.conflicts(id)?))
    }

    /// Settles the conflict at `path` (from `conflicts`) with `value`: one of the conflicting
    /// values (`conflict.values[i].value`) or a new one. An ordinary edit that syncs.
    pub fn resolve_conflict(&self, id: String, path: Vec<String>, value: FieldValue) -> Result<()> {
        let id = input::id("id", &id)?;
        let value = value
            .to_json()
            .map_err(|rule| VigieError::validation(path.join("."), rule))?;
        let kind = self.with_store(|s| {
            s.resolve_conflict(id, &path, &value)?;
            Ok(s.kind_of(id)?)
        })?;
        self.changed(&[id], kind, ChangeSource::Local);
        Ok(())
    }

    // ------------------------------------------------------------------------------------------
    // Queries (from the index: no record is loaded). `page` is the first 50 rows unless said;
    // `*_pages` walk every page.

    #[uniffi::method(default(query = None, page))]
    pub fn visits(&self, query: Option<VisitQuery>, page: Page) -> Result<Vec<VisitSummary>> {
        let query = input::visit_query(query.unwrap_or_default())?;
        self.with_store(|s| Ok(s.visits(&query, page)?))
    }

    #[uniffi::method(default(query = None, page))]
    pub fn child_cases(
        &self,
        query: Option<ChildCaseQuery>,
        page: Page,
    ) -> Result<Vec<ChildCaseSummary>> {
        let query = query.unwrap_or_default();
        self.with_store(|s| Ok(s.child_cases(&query, page)?))
    }

    #[uniffi::method(default(query = None, page))]
    pub fn workplaces(
        &self,
        query: Option<WorkplaceQuery>,
        page: Page,
    ) -> Result<Vec<WorkplaceSummary>> {
        let query = query.unwrap_or_default();
        self.with_store(|s| Ok(s.workplaces(&query, page)?))
    }

    /// Follow-ups due before `before` (YYYY-MM-DD; today gives the overdue list), soonest
    /// first, in an area, of one assignee and of one kind of record (`CHILD_CASE`: the children
    /// due; `VISIT`: the workplaces to visit again) if given.
    #[uniffi::method(default(area = None, assignee_id = None, kind = None, page))]
    pub fn follow_ups_due(
        &self,
        before: String,
        area: Option<AreaFilter>,
        assignee_id: Option<String>,
        page: Page,
        kind: Option<RecordKind>,
    ) -> Result<Vec<DueItem>> {
        let before = input::date("before", &before)?;
        let assignee = input::id_arg_opt("assignee_id", assignee_id.as_deref())?;
        self.with_store(|s| Ok(s.follow_ups_due_of(kind, area, assignee, before, page)?))
    }

    /// How many follow-ups `follow_ups_due` lists in all, for a dashboard (without walking
    /// its pages).
    #[uniffi::method(default(area = None, assignee_id = None, kind = None))]
    pub fn follow_ups_due_count(
        &self,
        before: String,
        area: Option<AreaFilter>,
        assignee_id: Option<String>,
        kind: Option<RecordKind>,
    ) -> Result<u64> {
        let before = input::date("before", &before)?;
        let assignee = input::id_arg_opt("assignee_id", assignee_id.as_deref())?;
        self.with_store(|s| Ok(s.follow_ups_due_count(kind, area, assignee, before)?))
    }

    /// How many alerts `alerts` lists in all.
    #[uniffi::method(default(area = None))]
    pub fn alert_count(&self, area: Option<AreaFilter>) -> Result<u64> {
        self.with_store(|s| Ok(s.alert_count(area)?))
    }

    /// Urgent alerts in an area (or everywhere): worst forms first, then hazardous child
    /// labour, then visits with forced-labour indicators; the most recent first within each.
    /// Closed, remediated and merged cases raise none.
    #[uniffi::method(default(area = None, page))]
    pub fn alerts(&self, area: Option<AreaFilter>, page: Page) -> Result<Vec<Alert>> {
        self.with_store(|s| Ok(s.alerts(area, page)?))
    }

    /// Workplaces and children whose name matches `text`, ignoring case and accents, best
    /// first: `limit` of them (at most 500) after the first `offset`, of one kind if given
    /// (`WORKPLACE`, `CHILD_CASE`: a region's common surname names more children than a page
    /// holds, and the workplaces would come after them).
    #[uniffi::method(default(limit = 20, kind = None, offset = 0))]
    pub fn search_names(
        &self,
        text: String,
        limit: i32,
        kind: Option<RecordKind>,
        offset: i32,
    ) -> Result<Vec<SearchHit>> {
        // Named as the caller named them; a page holds at most `Page::MAX_LIMIT` rows.
        input::count("limit", limit)?;
        input::count("offset", offset)?;
        let page = Page { offset, limit };
        self.with_store(|s| Ok(s.search_names_in(&text, kind, page)?))
    }

    /// Runs SQLite's integrity check; true when nothing is wrong.
    pub fn integrity_check(&self) -> Result<bool> {
        self.with_store(|s| Ok(s.integrity_check()?))
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
    #[uniffi::method(default(areas = []))]
    pub fn debug_assume_role(&self, role: vigie_core::Role, areas: Vec<String>) -> Result<()> {
        self.with_store(|s| Ok(s.debug_assume_profile(&UserProfile { role, areas })?))
    }
}

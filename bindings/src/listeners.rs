//! What the app hears of changes: the change listeners it implements, told after each write
//! commits (sync progress is `sync::SyncProgressListener`).
//!
//! A callback that throws must not undo or break the write it reports (the write has committed
//! by then): every call into foreign code is contained, and its failure ignored.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};
use uuid::Uuid;
use vigie_core::RecordKind;

/// Where a change came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ChangeSource {
    /// A write through this store object (create, update, workflow, conflict resolution).
    Local,
    /// Merged from the hub during a sync.
    Hub,
    /// Merged from another device (peer session).
    Peer,
    /// Merged from a bundle file.
    Bundle,
    /// Cases handed over by another user of this phone (`receive_hand_over`).
    HandOver,
}

/// Why a record left the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Removal {
    /// Erased on the hub (a supervisor's decision): gone for good, and it never comes back.
    Erased,
    /// No longer in this user's scope (the record moved to another area, the user's areas or
    /// role changed, the user was deactivated). It comes back if the scope does.
    LeftScope,
    /// The hub kept this device's changes to it for a supervisor's review: the user lost the
    /// record's area.
    Quarantined,
    /// The profile was wiped from this device (`Vault.wipe_user`, `wipe_all`).
    Wiped,
    /// Its user gave up the changes the hub refused, and the hub holds nothing of it
    /// (`VigieStore.discard_refused_changes`).
    Discarded,
}

impl From<vigie_core::sync::Removal> for Removal {
    fn from(r: vigie_core::sync::Removal) -> Removal {
        match r {
            vigie_core::sync::Removal::Erased => Removal::Erased,
            vigie_core::sync::Removal::LeftScope => Removal::LeftScope,
            vigie_core::sync::Removal::Quarantined => Removal::Quarantined,
        }
    }
}

/// One record that changed in the store, or left it (`removed` says why; reading it then finds
/// nothing).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RecordChange {
    pub id: String,
    pub kind: RecordKind,
    pub source: ChangeSource,
    #[uniffi(default = None)]
    pub removed: Option<Removal>,
}

impl RecordChange {
    /// A record written or merged.
    pub(crate) fn of(id: Uuid, kind: RecordKind, source: ChangeSource) -> RecordChange {
        RecordChange {
            id: id.to_string(),
            kind,
            source,
            removed: None,
        }
    }

    /// A record that left the store.
    pub(crate) fn removed(
        id: Uuid,
        kind: RecordKind,
        source: ChangeSource,
        why: Removal,
    ) -> RecordChange {
        RecordChange {
            removed: Some(why),
            ..RecordChange::of(id, kind, source)
        }
    }

    /// A record a sync removed from the store.
    pub(crate) fn removed_by_sync(record: &vigie_core::sync::RemovedRecord) -> RecordChange {
        RecordChange::removed(record.id, record.kind, ChangeSource::Hub, record.why.into())
    }
}

/// Told about changes after they are committed, on the thread that made them, once the store is
/// free again: a listener may read the store, but should hand long work to another thread.
#[uniffi::export(with_foreign)]
pub trait ChangeListener: Send + Sync {
    /// A record was written or merged (may be called for a record whose merge brought
    /// nothing), or removed from the store (`change.removed`): one call per record.
    fn on_change(&self, change: RecordChange) -> Result<(), ListenerError>;
    /// Records arrived in bulk (a bundle or a peer session) without the core reporting which:
    /// reload what is on screen.
    fn on_bulk_change(&self, source: ChangeSource, records: i64) -> Result<(), ListenerError>;
}

/// A listener that failed. The core ignores it: the change it was told of is committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum ListenerError {
    #[error("the listener failed")]
    Failed,
}

/// Whatever the app's listener threw: its text is dropped, never printed nor kept.
impl From<uniffi::UnexpectedUniFFICallbackError> for ListenerError {
    fn from(_: uniffi::UnexpectedUniFFICallbackError) -> ListenerError {
        ListenerError::Failed
    }
}

/// Runs a call into foreign code, containing any failure.
pub(crate) fn guarded(call: impl FnOnce() -> Result<(), ListenerError>) {
    let _ = catch_unwind(AssertUnwindSafe(call));
}

/// The listeners of one store: the last token given, and each listener with its token.
#[derive(Default)]
pub(crate) struct Listeners {
    list: Mutex<(i64, Vec<Registered>)>,
}

type Registered = (i64, Arc<dyn ChangeListener>);

impl Listeners {
    pub(crate) fn add(&self, listener: Arc<dyn ChangeListener>) -> i64 {
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        list.0 += 1;
        let token = list.0;
        list.1.push((token, listener));
        token
    }

    pub(crate) fn remove(&self, token: i64) -> bool {
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        let before = list.1.len();
        list.1.retain(|(t, _)| *t != token);
        list.1.len() != before
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .is_empty()
    }

    /// A snapshot, so that a listener may add or remove listeners while being told.
    fn snapshot(&self) -> Vec<Arc<dyn ChangeListener>> {
        self.list
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .iter()
            .map(|(_, l)| l.clone())
            .collect()
    }

    pub(crate) fn changed(&self, changes: &[RecordChange]) {
        if changes.is_empty() {
            return;
        }
        for listener in self.snapshot() {
            for change in changes {
                guarded(|| listener.on_change(change.clone()));
            }
        }
    }

    pub(crate) fn bulk(&self, source: ChangeSource, records: i64) {
        if records == 0 {
            return;
        }
        for listener in self.snapshot() {
            guarded(|| listener.on_bulk_change(source, records));
        }
    }
}

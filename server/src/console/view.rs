//! What the console reads: a store with the core's index rows (lists, search, alerts,
//! indicators, due dates, places), so that every page runs the core's own queries, scoped by
//! the core's own rule, whatever the hub's storage.
//!
//! - Embedded hub: a second connection to the hub's own file (`hub.db`), which already holds the
//!   index rows; under WAL it reads the last committed state and never waits for the writer.
//! - PostgreSQL: PostgreSQL holds documents, the change log and scope columns, not the indexes.
//!   Each hub process keeps a copy in an encrypted store of its own (a random key that lives
//!   only in the process, in a temporary directory removed at exit), brought up to date from
//!   the change order before each page: records changed since the copy's cursor are merged,
//!   erased ones are forgotten. Cost: a second copy of the records per process (disk, and the
//!   first catch-up at start: about as long as a device's first sync of everything), and a
//!   process sees another process's writes at its next page rather than at once; its own
//!   writes it sees at once (it catches up before reading).

use std::sync::{Mutex, MutexGuard};
use vigie_core::{Error, Store};

/// The console's store and, on PostgreSQL, how far its copy has caught up.
pub struct View {
    pub store: Store,
    /// The last change number of the hub's change order the copy holds (PostgreSQL only).
    pub cursor: i64,
    /// The copy's directory, removed with the view.
    pub scratch: Option<tempfile::TempDir>,
}

/// The view, opened at first use and shared by the console's requests one at a time.
#[derive(Default)]
pub struct Views {
    view: Mutex<Option<View>>,
}

impl Views {
    /// The view, opened if needed and brought up to date with the hub's storage.
    pub fn current(&self, backend: &dyn crate::backend::Backend) -> Result<ViewGuard<'_>, Error> {
        let mut guard = self.view.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(backend.open_view()?);
        }
        if let Some(view) = guard.as_mut() {
            backend.refresh_view(view)?;
        }
        Ok(ViewGuard { guard })
    }
}

impl Views {
    /// Closes the view (waiting for a request or a catch-up using it): its temporary copy, if
    /// any, is removed. A later page opens it again.
    pub fn close(&self) {
        let view = self.view.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(view);
    }
}

pub struct ViewGuard<'a> {
    guard: MutexGuard<'a, Option<View>>,
}

impl std::ops::Deref for ViewGuard<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.guard.as_ref().expect("opened").store
    }
}

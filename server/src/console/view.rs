//! What the console reads: a store with the core's index rows (lists, search, alerts,
//! indicators, due dates, places), so that every page runs the core's own queries, scoped by
//! the core's own rule, whatever the hub's storage.
//!
//! - Embedded hub: connections of its own to the hub's own file (`hub.db`), which already holds
//!   the index rows; under WAL each reads the last committed state and never waits for the
//!   writer.
//! - PostgreSQL: PostgreSQL holds documents, the change log and scope columns, not the indexes.
//!   Each hub process keeps a copy in an encrypted store of its own (a random key that lives
//!   only in the process, in a temporary directory removed at exit), brought up to date from
//!   the change order before each page: records changed since the copy's cursor are merged,
//!   erased ones are forgotten. Cost: a second copy of the records per process (disk, and the
//!   first catch-up at start: about as long as a device's first sync of everything), and a
//!   process sees another process's writes at its next page rather than at once; its own
//!   writes it sees at once (it catches up before reading).

use std::sync::{Mutex, MutexGuard, PoisonError};
use vigie_core::{Error, Store, StoreConfig};

/// The console's store and, on PostgreSQL, how far its copy has caught up.
pub struct View {
    pub store: Store,
    /// The last change number of the hub's change order the copy holds (PostgreSQL only).
    pub cursor: i64,
    /// The copy's directory, removed with the view.
    pub scratch: Option<tempfile::TempDir>,
    /// How to open another connection to the same file, for a page read beside others.
    pub reopen: StoreConfig,
}

/// The view, opened at first use, and the connections pages read it through.
///
/// Pages read in parallel, each through a connection of its own (under WAL, readers never
/// wait for one another nor for the writer): a long export leaves the other supervisors'
/// pages to run beside it. Only the PostgreSQL copy's catch-up goes one at a time.
#[derive(Default)]
pub struct Views {
    view: Mutex<Option<View>>,
    readers: Mutex<Readers>,
}

/// Idle connections, and which opening of the view they belong to.
#[derive(Default)]
struct Readers {
    idle: Vec<Store>,
    /// Bumped when the view closes: a connection to a closed view is not used again.
    generation: u64,
}

impl Views {
    /// Opens the view if needed and brings it up to date, holding no connection after: what
    /// the hub does at its start, before the first page needs it. (A connection opened at the
    /// end would race the view's closing when the hub stops at once: its file gone, "disk
    /// I/O error".)
    pub fn warm(&self, backend: &dyn crate::backend::Backend) -> Result<(), Error> {
        let mut guard = self.view.lock().unwrap_or_else(PoisonError::into_inner);
        up_to_date(&mut guard, backend).map(|_| ())
    }

    /// A connection to the view, opened if needed and brought up to date with the hub's
    /// storage.
    pub fn current(&self, backend: &dyn crate::backend::Backend) -> Result<ViewGuard<'_>, Error> {
        let (generation, config) = {
            let mut guard = self.view.lock().unwrap_or_else(PoisonError::into_inner);
            let view = up_to_date(&mut guard, backend)?;
            let mut readers = self.readers();
            if let Some(store) = readers.idle.pop() {
                let generation = readers.generation;
                return Ok(ViewGuard {
                    views: self,
                    store: Some(store),
                    generation,
                });
            }
            (readers.generation, view.reopen.clone())
        };
        // Opened outside the locks: other pages need not wait for it.
        Ok(ViewGuard {
            views: self,
            store: Some(Store::open(config)?),
            generation,
        })
    }

    /// Closes the view (waiting for a catch-up in progress): its temporary copy, if any, is
    /// removed. A later page opens it again; a connection a page still holds is closed when
    /// the page ends.
    pub fn close(&self) {
        let view = self
            .view
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let idle = {
            let mut readers = self.readers();
            readers.generation += 1;
            std::mem::take(&mut readers.idle)
        };
        drop(idle);
        drop(view);
    }

    fn readers(&self) -> MutexGuard<'_, Readers> {
        self.readers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The view, opened if it was not, brought up to date with the hub's storage.
fn up_to_date<'a>(
    view: &'a mut Option<View>,
    backend: &dyn crate::backend::Backend,
) -> Result<&'a mut View, Error> {
    let view = match view {
        Some(view) => view,
        empty @ None => empty.insert(backend.open_view()?),
    };
    backend.refresh_view(view)?;
    Ok(view)
}

/// A page's connection to the view, given back for the next page when it ends.
pub struct ViewGuard<'a> {
    views: &'a Views,
    store: Option<Store>,
    generation: u64,
}

impl std::ops::Deref for ViewGuard<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        self.store.as_ref().expect("held until dropped")
    }
}

impl Drop for ViewGuard<'_> {
    fn drop(&mut self) {
        let Some(store) = self.store.take() else {
            return;
        };
        let mut readers = self.views.readers();
        if readers.generation == self.generation {
            readers.idle.push(store);
        }
    }
}

//! Every page of a query, one after the other: `store.visit_pages(query)` gives an object whose
//! `next()` returns the next page, and an empty list once every row was read (Python's package
//! makes them iterable over the rows; Kotlin's, sequences). Each call reads one page from the
//! index, as the page-at-a-time queries do.
//!
//! A walk goes on while the store changes (a sync brings cases, erases one, a merge moves one):
//! it returns no row twice, and a row that stayed in the query is not skipped when rows before
//! it come or go. Each page is read from where the last page's rows now stand (a page back is
//! read with it to find them), not from a count of rows, which the changes shift.

use crate::error::Result;
use crate::input;
use crate::store::VigieStore;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use uuid::Uuid;
use vigie_core::{
    Alert, AreaFilter, ChildCaseQuery, ChildCaseSummary, DueItem, Page, RecordKind, Store,
    VisitQuery, VisitSummary, WorkplaceQuery, WorkplaceSummary,
};

/// Where a walk stands.
struct Walk {
    /// The offset the next page starts at, as the store stood at the last call, and its
    /// size; `None` once every row was read.
    next: Option<Page>,
    /// The ids of the rows the last call went through, in order: where they stand now says
    /// where the next page starts.
    last: Vec<Uuid>,
    /// Every row returned (a row a change moved past the walk's place is not returned again).
    returned: HashSet<Uuid>,
}

impl Walk {
    fn new(page_size: i32) -> Result<Mutex<Walk>> {
        input::count("page_size", page_size)?;
        Ok(Mutex::new(Walk {
            next: Some(Page::first(page_size.min(Page::MAX_LIMIT))),
            last: Vec::new(),
            returned: HashSet::new(),
        }))
    }

    /// The next page's rows, read with `read` (one page of the query).
    fn next<R>(
        &mut self,
        store: &mut Store,
        id: impl Fn(&R) -> Uuid,
        read: impl Fn(&mut Store, Page) -> vigie_core::Result<Vec<R>>,
    ) -> Result<Vec<R>> {
        let mut rows = Vec::new();
        while let Some(page) = self.next {
            let limit = page.limit;
            if limit == 0 {
                self.next = None;
                break;
            }
            // The page before this one and this one: the rows the last call went through are
            // looked for in both (rows before them left, or came).
            let back = page.offset.min(limit);
            let mut window = match back {
                0 => Vec::new(),
                _ => read(
                    store,
                    Page {
                        offset: page.offset - back,
                        limit: back,
                    },
                )?,
            };
            let before = window.len();
            let ahead = read(store, page)?;
            let more = ahead.len() >= limit as usize;
            window.extend(ahead);
            let start = self
                .last
                .iter()
                .rev()
                .find_map(|last| window.iter().position(|r| id(r) == *last))
                .map_or(before, |at| at + 1);
            let total = window.len();
            // The window's rows from `start`, until a page is full: `end` is where the next
            // page starts in it.
            let mut end = start;
            self.last.clear();
            for row in window.into_iter().skip(start) {
                if rows.len() == limit as usize {
                    break;
                }
                end += 1;
                let row_id = id(&row);
                self.last.push(row_id);
                if self.returned.insert(row_id) {
                    rows.push(row);
                }
            }
            let done = !more && end == total;
            self.next = (!done).then_some(Page {
                offset: page.offset - back + end as i32,
                limit,
            });
            if !rows.is_empty() || done {
                break;
            }
        }
        Ok(rows)
    }
}

/// Declares a pages object over one query: its type, the query's parts, the rows, and how a
/// page is read.
macro_rules! pages {
    ($(#[$doc:meta])* $name:ident { $($part:ident: $ty:ty),* } -> $row:ty, |$s:ident, $q:ident, $page:ident| $read:expr) => {
        $(#[$doc])*
        #[derive(uniffi::Object)]
        pub struct $name {
            store: Arc<VigieStore>,
            $($part: $ty,)*
            walk: Mutex<Walk>,
        }

        #[uniffi::export]
        impl $name {
            /// The next page of rows; empty once every row was read.
            pub fn next(&self) -> Result<Vec<$row>> {
                let mut walk = self.walk.lock().unwrap_or_else(PoisonError::into_inner);
                let $q = self;
                self.store.with_store(|store| {
                    walk.next(store, |row: &$row| row.id, |$s, $page| $read)
                })
            }
        }
    };
}

pages! {
    /// Every page of a visit query (`VigieStore.visit_pages`).
    VisitPages { query: VisitQuery } -> VisitSummary,
    |s, q, page| s.visits(&q.query, page)
}

pages! {
    /// Every page of a child case query (`VigieStore.child_case_pages`).
    ChildCasePages { query: ChildCaseQuery } -> ChildCaseSummary,
    |s, q, page| s.child_cases(&q.query, page)
}

pages! {
    /// Every page of a workplace query (`VigieStore.workplace_pages`).
    WorkplacePages { query: WorkplaceQuery } -> WorkplaceSummary,
    |s, q, page| s.workplaces(&q.query, page)
}

pages! {
    /// Every page of the alerts of an area (`VigieStore.alert_pages`).
    AlertPages { area: Option<AreaFilter> } -> Alert,
    |s, q, page| s.alerts(q.area.clone(), page)
}

pages! {
    /// Every page of the follow-ups due (`VigieStore.follow_up_due_pages`).
    DuePages {
        before: chrono::NaiveDate,
        area: Option<AreaFilter>,
        assignee: Option<uuid::Uuid>,
        kind: Option<RecordKind>
    } -> DueItem,
    |s, q, page| s.follow_ups_due_of(q.kind, q.area.clone(), q.assignee, q.before, page)
}

#[uniffi::export]
impl VigieStore {
    /// Every page of `visits(query)`, `page_size` rows at a time.
    #[uniffi::method(default(query = None, page_size = 100))]
    pub fn visit_pages(
        self: Arc<Self>,
        query: Option<VisitQuery>,
        page_size: i32,
    ) -> Result<Arc<VisitPages>> {
        let query = input::visit_query(query.unwrap_or_default())?;
        Ok(Arc::new(VisitPages {
            walk: Walk::new(page_size)?,
            store: self,
            query,
        }))
    }

    /// Every page of `child_cases(query)`, `page_size` rows at a time.
    #[uniffi::method(default(query = None, page_size = 100))]
    pub fn child_case_pages(
        self: Arc<Self>,
        query: Option<ChildCaseQuery>,
        page_size: i32,
    ) -> Result<Arc<ChildCasePages>> {
        Ok(Arc::new(ChildCasePages {
            walk: Walk::new(page_size)?,
            store: self,
            query: query.unwrap_or_default(),
        }))
    }

    /// Every page of `workplaces(query)`, `page_size` rows at a time.
    #[uniffi::method(default(query = None, page_size = 100))]
    pub fn workplace_pages(
        self: Arc<Self>,
        query: Option<WorkplaceQuery>,
        page_size: i32,
    ) -> Result<Arc<WorkplacePages>> {
        Ok(Arc::new(WorkplacePages {
            walk: Walk::new(page_size)?,
            store: self,
            query: query.unwrap_or_default(),
        }))
    }

    /// Every page of `alerts(area)`, `page_size` rows at a time.
    #[uniffi::method(default(area = None, page_size = 100))]
    pub fn alert_pages(
        self: Arc<Self>,
        area: Option<AreaFilter>,
        page_size: i32,
    ) -> Result<Arc<AlertPages>> {
        Ok(Arc::new(AlertPages {
            walk: Walk::new(page_size)?,
            store: self,
            area,
        }))
    }

    /// Every page of `follow_ups_due(before, area, assignee_id, kind)`, `page_size` rows at a
    /// time.
    #[uniffi::method(default(area = None, assignee_id = None, page_size = 100, kind = None))]
    pub fn follow_up_due_pages(
        self: Arc<Self>,
        before: String,
        area: Option<AreaFilter>,
        assignee_id: Option<String>,
        page_size: i32,
        kind: Option<RecordKind>,
    ) -> Result<Arc<DuePages>> {
        Ok(Arc::new(DuePages {
            walk: Walk::new(page_size)?,
            before: input::date("before", &before)?,
            assignee: input::id_arg_opt("assignee_id", assignee_id.as_deref())?,
            kind,
            store: self,
            area,
        }))
    }
}

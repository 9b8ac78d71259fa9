//! Every page of a query, one after the other: `store.visit_pages(query)` gives an object whose
//! `next()` returns the next page, and an empty list once every row was read (Python's package
//! makes them iterable over the rows; Kotlin's, sequences). Each call reads one page from the
//! index, as the page-at-a-time queries do.
//!
//! A walk goes on while the store changes (a sync brings cases, erases one, a merge moves one):
//! each page is the rows after the last one returned, in the query's order (its sort key, not a
//! count of rows, which the changes shift), so a row that stayed is not skipped, and a row that
//! moved past the walk's place is not returned twice.

use crate::error::{Result, VigieError};
use crate::input;
use crate::store::VigieStore;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use uuid::Uuid;
use vigie_core::{
    Alert, AreaFilter, ChildCaseQuery, ChildCaseSummary, DueItem, Page, RecordKind, SortKey, Store,
    VisitQuery, VisitSummary, Walked, WorkplaceQuery, WorkplaceSummary,
};

/// Where a walk stands.
struct Walk {
    /// Rows a page holds (at most `Page::MAX_LIMIT`).
    limit: i32,
    /// The sort key of the last row read; `None` before the first page.
    after: Option<SortKey>,
    /// Every row read has been returned or skipped, and none is left.
    done: bool,
    /// Every row returned: a row a change moved past the walk's place is not returned again.
    returned: HashSet<Uuid>,
}

impl Walk {
    fn new(page_size: i32) -> Result<Mutex<Walk>> {
        // A size of 0 would walk nothing, and the list would look empty however many rows
        // the store holds (a screen's height divided before its layout).
        if input::count("page_size", page_size)? == 0 {
            return Err(VigieError::validation("page_size", "must be at least 1"));
        }
        Ok(Mutex::new(Walk {
            limit: page_size.min(Page::MAX_LIMIT),
            after: None,
            done: false,
            returned: HashSet::new(),
        }))
    }

    /// The next page's rows, read with `read` (the rows after a key, in the query's order).
    fn next<R>(
        &mut self,
        store: &mut Store,
        id: impl Fn(&R) -> Uuid,
        read: impl Fn(&mut Store, Option<&SortKey>, i32) -> vigie_core::Result<Walked<R>>,
    ) -> Result<Vec<R>> {
        let mut rows = Vec::new();
        while !self.done && rows.is_empty() {
            let walked = read(store, self.after.as_ref(), self.limit)?;
            self.done = walked.rows.len() < self.limit as usize;
            if walked.last.is_some() {
                self.after = walked.last;
            }
            rows = walked
                .rows
                .into_iter()
                .filter(|row| self.returned.insert(id(row)))
                .collect();
        }
        Ok(rows)
    }
}

/// Declares a pages object over one query: its type, the query's parts, the rows, and how the
/// rows after a key are read.
macro_rules! pages {
    ($(#[$doc:meta])* $name:ident { $($part:ident: $ty:ty),* } -> $row:ty, |$s:ident, $q:ident, $after:ident, $limit:ident| $read:expr) => {
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
                    walk.next(store, |row: &$row| row.id, |$s, $after, $limit| $read)
                })
            }
        }
    };
}

pages! {
    /// Every page of a visit query (`VigieStore.visit_pages`).
    VisitPages { query: VisitQuery } -> VisitSummary,
    |s, q, after, limit| s.visits_after(&q.query, after, limit)
}

pages! {
    /// Every page of a child case query (`VigieStore.child_case_pages`).
    ChildCasePages { query: ChildCaseQuery } -> ChildCaseSummary,
    |s, q, after, limit| s.child_cases_after(&q.query, after, limit)
}

pages! {
    /// Every page of a workplace query (`VigieStore.workplace_pages`).
    WorkplacePages { query: WorkplaceQuery } -> WorkplaceSummary,
    |s, q, after, limit| s.workplaces_after(&q.query, after, limit)
}

pages! {
    /// Every page of the alerts of an area (`VigieStore.alert_pages`).
    AlertPages { area: Option<AreaFilter> } -> Alert,
    |s, q, after, limit| s.alerts_after(q.area.clone(), after, limit)
}

pages! {
    /// Every page of the follow-ups due (`VigieStore.follow_up_due_pages`).
    DuePages {
        before: chrono::NaiveDate,
        area: Option<AreaFilter>,
        assignee: Option<uuid::Uuid>,
        kind: Option<RecordKind>
    } -> DueItem,
    |s, q, after, limit| s.follow_ups_due_after(q.kind, (q.area.clone(), q.assignee, q.before), after, limit)
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

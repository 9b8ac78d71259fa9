//! Every page of a query, one after the other: `store.visit_pages(query)` gives an object whose
//! `next()` returns the next page, and an empty list once every row was read (Python's package
//! makes them iterable over the rows; Kotlin's, sequences). Each call reads one page from the
//! index, as the page-at-a-time queries do; rows written meanwhile may shift the pages.

use crate::error::Result;
use crate::input;
use crate::store::VigieStore;
use std::sync::{Arc, Mutex, PoisonError};
use vigie_core::{
    Alert, AreaFilter, ChildCaseQuery, ChildCaseSummary, DueItem, Page, RecordKind, VisitQuery,
    VisitSummary, WorkplaceQuery, WorkplaceSummary,
};

/// Declares a pages object over one query: its type, the query's parts, the rows, and how a
/// page is read.
macro_rules! pages {
    ($(#[$doc:meta])* $name:ident { $($part:ident: $ty:ty),* } -> $row:ty, |$s:ident, $q:ident, $page:ident| $read:expr) => {
        $(#[$doc])*
        #[derive(uniffi::Object)]
        pub struct $name {
            store: Arc<VigieStore>,
            $($part: $ty,)*
            /// The next page to read; `None` once a page came back short.
            next: Mutex<Option<Page>>,
        }

        #[uniffi::export]
        impl $name {
            /// The next page of rows; empty once every page was read.
            pub fn next(&self) -> Result<Vec<$row>> {
                let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
                let Some($page) = *next else {
                    return Ok(Vec::new());
                };
                let $q = self;
                let rows: Vec<$row> = self.store.with_store(|$s| Ok($read?))?;
                *next = (rows.len() as i64 >= i64::from($page.limit) && $page.limit > 0)
                    .then(|| $page.next());
                Ok(rows)
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

/// The first page of a walk `page_size` rows long (a negative size is refused, naming it); a
/// page holds at most `Page::MAX_LIMIT` rows, so a larger size walks pages of that many (a
/// page that came back short would otherwise look like the last).
fn first(page_size: i32) -> Result<Mutex<Option<Page>>> {
    input::count("page_size", page_size)?;
    Ok(Mutex::new(Some(Page::first(
        page_size.min(Page::MAX_LIMIT),
    ))))
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
            next: first(page_size)?,
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
            next: first(page_size)?,
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
            next: first(page_size)?,
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
            next: first(page_size)?,
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
            next: first(page_size)?,
            before: input::date("before", &before)?,
            assignee: input::id_arg_opt("assignee_id", assignee_id.as_deref())?,
            kind,
            store: self,
            area,
        }))
    }
}

//! The store's queries as one principal sees them: what the hub's console shows a supervisor.
//!
//! Every query keeps only the records the principal receives at sync, by the same rule: the SQL
//! form of the area rule is `queries::area_rule` (the hub's walk uses it too), the Rust form
//! `Scope::receives`, and the kinds are the role's. A record outside the scope is `NotFound`,
//! as if it did not exist. The features add their own scoped reads (indicators, exports,
//! duplicate candidates) on `Scoped` in their modules.

use super::Store;
use super::queries::{
    self, Alert, ChildCaseQuery, ChildCaseSummary, DueItem, Page, Places, ReviewItem, SearchHit,
    VisitQuery, VisitSummary, WorkplaceQuery, WorkplaceSummary,
};
use crate::doc::{Conflict, HistoryEntry};
use crate::domain::area::AreaFilter;
use crate::domain::codes::RecordKind;
use crate::domain::records::Record;
use crate::domain::rights::{Principal, Scope};
use crate::error::{Error, Result};
use chrono::NaiveDate;
use uuid::Uuid;

/// A store seen by one principal (`Store::scoped`).
pub struct Scoped<'s> {
    pub(crate) store: &'s Store,
    /// The principal's scope, its area codes resolved against the area trees in force.
    pub(crate) who: Scope,
}

impl Store {
    /// The store as `who` sees it: the records their role and areas receive at sync.
    pub fn scoped<'s>(&'s self, who: &Principal) -> Scoped<'s> {
        Scoped {
            store: self,
            who: who.scope(&self.reference()),
        }
    }
}

impl Scoped<'_> {
    /// The kind of a record the principal receives, if it is one (reference data excluded).
    pub fn kind_of(&self, id: Uuid) -> Result<Option<RecordKind>> {
        Ok(queries::filed_as(&self.store.conn, id)?
            .filter(|(kind, area)| {
                *kind != RecordKind::Reference && self.who.receives(*kind, Some(area))
            })
            .map(|(kind, _)| kind))
    }

    /// The record's kind if the principal receives it (and it is of `kind`, when given), else
    /// `NotFound`.
    pub(crate) fn visible(&self, id: Uuid, kind: Option<RecordKind>) -> Result<RecordKind> {
        match self.kind_of(id)? {
            Some(found) if kind.is_none_or(|k| k == found) => Ok(found),
            _ => Err(Error::NotFound { kind, id }),
        }
    }

    pub fn get<R: Record>(&self, id: Uuid) -> Result<R> {
        self.visible(id, Some(R::KIND))?;
        self.store.get(id)
    }

    /// `Store::get_case_with_adult_day`, within this scope.
    pub fn get_case_with_adult_day(
        &self,
        id: Uuid,
    ) -> Result<(crate::domain::records::ChildCase, Option<NaiveDate>)> {
        self.visible(id, Some(RecordKind::ChildCase))?;
        self.store.get_case_with_adult_day(id)
    }

    pub fn history(&self, id: Uuid) -> Result<Vec<HistoryEntry>> {
        self.visible(id, None)?;
        self.store.history(id)
    }

    pub fn recent_history(&self, id: Uuid, most: usize) -> Result<(Vec<HistoryEntry>, usize)> {
        self.visible(id, None)?;
        self.store.recent_history(id, most)
    }

    pub fn conflicts(&self, id: Uuid) -> Result<Vec<Conflict>> {
        self.visible(id, None)?;
        self.store.conflicts(id)
    }

    pub fn visits(&self, query: &VisitQuery, page: Page) -> Result<Vec<VisitSummary>> {
        Ok(queries::visits(
            &self.store.conn,
            query,
            queries::Slice::Page(page),
            Some(&self.who),
        )?
        .rows)
    }

    /// `visits`, each with what makes it urgent (`ReviewItem`), as its index row says.
    pub fn visits_marked(&self, query: &VisitQuery, page: Page) -> Result<Vec<ReviewItem>> {
        let mut items = queries::visits_marked(
            &self.store.conn,
            query,
            queries::Slice::Page(page),
            Some(&self.who),
        )?
        .rows;
        self.count_children_without_case(&mut items)?;
        Ok(items)
    }

    /// Each item's children without a case, where the row's head-count holds any.
    fn count_children_without_case(&self, items: &mut [ReviewItem]) -> Result<()> {
        let counted: Vec<Uuid> = items
            .iter()
            .filter(|i| i.children_without_case > 0)
            .map(|i| i.visit.id)
            .collect();
        let rows = queries::rows_of(&self.store.conn, &counted)?;
        let listed: Vec<i64> = rows.values().copied().collect();
        let without = self.without_case(queries::registered_of(&self.store.conn, &listed)?)?;
        for item in items {
            item.children_without_case = rows
                .get(&item.visit.id)
                .and_then(|row| without.get(row))
                .copied()
                .unwrap_or(0);
        }
        Ok(())
    }

    /// The visits of `registered` with children under 15 no case registers, by row number,
    /// with how many: counted from the rows, or from the documents for those the rows cannot
    /// tell (`Store::children_without_case`).
    fn without_case(
        &self,
        registered: Vec<queries::Registered>,
    ) -> Result<std::collections::HashMap<i64, u32>> {
        let mut without = std::collections::HashMap::new();
        for visit in registered {
            let n = match visit.registered {
                Some(registered) => visit.under_15.saturating_sub(registered),
                None => match queries::id_of_row(&self.store.conn, visit.row)? {
                    Some(id) => {
                        let doc: crate::domain::records::Visit = self.store.get(id)?;
                        self.store.children_without_case(&doc)?
                    }
                    // Gone since (erased): nothing of it to count.
                    None => 0,
                },
            };
            if n > 0 {
                without.insert(visit.row, n);
            }
        }
        Ok(without)
    }

    /// Child cases, with the name search (`Store::search_names`: accents and case ignored,
    /// each word a prefix) when `name` is given.
    pub fn child_cases(
        &self,
        query: &ChildCaseQuery,
        name: Option<&str>,
        page: Page,
    ) -> Result<Vec<ChildCaseSummary>> {
        let slice = queries::Slice::Page(page);
        Ok(queries::child_cases(&self.store.conn, query, slice, Some(&self.who), name)?.rows)
    }

    pub fn workplaces(&self, query: &WorkplaceQuery, page: Page) -> Result<Vec<WorkplaceSummary>> {
        Ok(queries::workplaces(
            &self.store.conn,
            query,
            queries::Slice::Page(page),
            Some(&self.who),
        )?
        .rows)
    }

    /// Follow-ups due before a day, of one kind of record (`None`: visits' and cases').
    pub fn follow_ups_due(
        &self,
        area: Option<AreaFilter>,
        before: NaiveDate,
        kind: Option<RecordKind>,
        page: Page,
    ) -> Result<Vec<DueItem>> {
        let slice = queries::Slice::Page(page);
        Ok(queries::due_before(
            &self.store.conn,
            &area,
            None,
            before,
            slice,
            Some(&self.who),
            kind,
        )?
        .rows)
    }

    pub fn search_names(&self, text: &str, limit: u32) -> Result<Vec<SearchHit>> {
        let page = Page::first(super::search_limit(limit));
        queries::search_names(&self.store.conn, text, None, page, Some(&self.who))
    }

    pub fn alerts(&self, area: Option<AreaFilter>, page: Page) -> Result<Vec<Alert>> {
        Ok(queries::alerts(
            &self.store.conn,
            &area,
            queries::Slice::Page(page),
            Some(&self.who),
        )?
        .rows)
    }

    /// Submitted visits waiting for review: the most urgent alert first, then those whose
    /// children counted at work no case registers, then those with a violation, then the
    /// longest waiting.
    pub fn review_queue(&self, page: Page) -> Result<Vec<ReviewItem>> {
        // The visits whose children counted no case registers rank above paperwork.
        let without =
            self.without_case(queries::registered_in_queue(&self.store.conn, &self.who)?)?;
        Ok(
            queries::review_queue(&self.store.conn, &self.who, page, &without)?
                .into_iter()
                .map(|(row, mut item)| {
                    item.children_without_case = without.get(&row).copied().unwrap_or(0);
                    item
                })
                .collect(),
        )
    }

    /// The children under 15 `visit` counted at work whom no case registers, as the review
    /// queue counts them (`Store::children_without_case`).
    pub fn children_without_case(&self, visit: &crate::domain::records::Visit) -> Result<u32> {
        self.store.children_without_case(visit)
    }

    /// The workplace of each of `visits` this scope receives, with its name, by visit.
    pub fn workplaces_of_visits(
        &self,
        visits: &[Uuid],
    ) -> Result<std::collections::HashMap<Uuid, (Uuid, String)>> {
        queries::workplaces_of_visits(&self.store.conn, visits, &self.who)
    }

    /// How many visits `review_queue` lists in all (a list's figure, without walking it).
    pub fn review_count(&self) -> Result<u64> {
        queries::review_count(&self.store.conn, &self.who)
    }

    /// How many alerts `alerts` lists in all.
    pub fn alert_count(&self, area: Option<AreaFilter>) -> Result<u64> {
        queries::alert_count(&self.store.conn, &area, Some(&self.who))
    }

    /// How many follow-ups `follow_ups_due` lists in all.
    pub fn follow_ups_due_count(
        &self,
        area: Option<AreaFilter>,
        before: NaiveDate,
        kind: Option<RecordKind>,
    ) -> Result<u64> {
        queries::due_count(&self.store.conn, &area, None, before, Some(&self.who), kind)
    }

    /// The map's points for visits started in `[from, until)`: every workplace with a point,
    /// coloured by the worst alert among its visits and its cases in the period, and up to
    /// `max_visits` visits made there with a point, the most urgent first.
    pub fn places(&self, from: NaiveDate, until: NaiveDate, max_visits: usize) -> Result<Places> {
        queries::places(&self.store.conn, &self.who, from, until, max_visits)
    }
}

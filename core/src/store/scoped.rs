//! The store's queries as one principal sees them: what the hub's console shows a supervisor.
//!
//! Every query keeps only the records the principal receives at sync, by the same rule: the SQL
//! form of the area rule is `sync::area_rule`, the Rust form `Principal::receives`, and the
//! kinds are the role's. A record outside the scope is `NotFound`, as if it did not exist.

use super::Store;
use super::index::{self, Filter, uuid_col};
use crate::alerts::{Alert, AlertSeverity};
use crate::doc::{Conflict, HistoryEntry};
use crate::error::{Error, Result};
use crate::export::{ExportOptions, ExportTable};
use crate::indicators::{IndicatorFilter, Indicators};
use crate::model::{Area, AreaFilter, Record, RecordKind, Role};
use crate::store::{
    ChildCaseQuery, ChildCaseSummary, DueItem, Page, SearchHit, VisitQuery, VisitSummary,
    WorkplaceQuery, WorkplaceSummary,
};
use crate::sync::{Principal, Scope};
use chrono::NaiveDate;
use rusqlite::OptionalExtension;
use rusqlite::types::Value as Sql;
use std::collections::HashMap;
use uuid::Uuid;

/// A store seen by one principal (`Store::scoped`).
pub struct Scoped<'s> {
    store: &'s Store,
    /// The principal's scope, its area codes resolved against the area trees in force.
    who: Scope,
}

/// A submitted visit waiting for review, with what makes it urgent.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewItem {
    pub visit: VisitSummary,
    /// The visit found forced-labour indicators.
    pub forced_labour: bool,
    /// A checklist answer "no", or a forced-labour indicator.
    pub violation: bool,
}

/// A point on the map: a workplace (coloured by the worst alert of its visits and cases in the
/// period) or a visit made in the period.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    pub id: Uuid,
    pub kind: RecordKind,
    pub latitude: f64,
    pub longitude: f64,
    pub severity: Option<AlertSeverity>,
    /// A workplace's visits in the period.
    pub visits: u32,
    pub district: String,
    pub community: String,
}

/// The map's points: workplaces, and visits (the most urgent first, at most the number asked;
/// `visits_left_out` says how many more there were).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Places {
    pub workplaces: Vec<Place>,
    pub visits: Vec<Place>,
    pub visits_left_out: usize,
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

fn ms(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis())
        .unwrap_or(0)
}

impl Scoped<'_> {
    /// The kind of a record the principal receives, if it is one (reference data excluded).
    pub fn kind_of(&self, id: Uuid) -> Result<Option<RecordKind>> {
        let row = self
            .store
            .conn
            .prepare_cached(
                "SELECT s.kind, s.country, s.region, s.district, s.community
                 FROM records r JOIN scope_index s ON s.record = r.rowid WHERE r.id = ?1",
            )?
            .query_row([id.as_bytes()], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    Area::new(
                        &r.get::<_, String>(1)?,
                        &r.get::<_, String>(2)?,
                        &r.get::<_, String>(3)?,
                        &r.get::<_, String>(4)?,
                    ),
                ))
            })
            .optional()?;
        Ok(row.and_then(|(kind, area)| {
            RecordKind::from_i64(kind)
                .filter(|k| *k != RecordKind::Reference && self.who.receives(*k, Some(&area)))
        }))
    }

    fn visible(&self, id: Uuid, kind: Option<RecordKind>) -> Result<RecordKind> {
        match self.kind_of(id)? {
            Some(found) if kind.is_none_or(|k| k == found) => Ok(found),
            _ => Err(Error::NotFound { kind, id }),
        }
    }

    pub fn get<R: Record>(&self, id: Uuid) -> Result<R> {
        self.visible(id, Some(R::KIND))?;
        self.store.get(id)
    }

    pub fn history(&self, id: Uuid) -> Result<Vec<HistoryEntry>> {
        self.visible(id, None)?;
        self.store.history(id)
    }

    pub fn conflicts(&self, id: Uuid) -> Result<Vec<Conflict>> {
        self.visible(id, None)?;
        self.store.conflicts(id)
    }

    /// `Store::duplicate_candidates` of a case, among the cases the principal receives.
    pub fn duplicate_candidates(&self, case: Uuid) -> Result<Vec<(Uuid, f64)>> {
        self.visible(case, Some(RecordKind::ChildCase))?;
        let mut found = Vec::new();
        for (id, score) in self.store.duplicate_candidates(case)? {
            if self.kind_of(id)? == Some(RecordKind::ChildCase) {
                found.push((id, score));
            }
        }
        Ok(found)
    }

    pub fn visits(&self, query: &VisitQuery, page: Page) -> Result<Vec<VisitSummary>> {
        index::visits(&self.store.conn, query, page, Some(&self.who))
    }

    /// Child cases, with the name search (`Store::search_names`: accents and case ignored,
    /// each word a prefix) when `name` is given.
    pub fn child_cases(
        &self,
        query: &ChildCaseQuery,
        name: Option<&str>,
        page: Page,
    ) -> Result<Vec<ChildCaseSummary>> {
        index::child_cases(&self.store.conn, query, page, Some(&self.who), name)
    }

    pub fn workplaces(&self, query: &WorkplaceQuery, page: Page) -> Result<Vec<WorkplaceSummary>> {
        index::workplaces(&self.store.conn, query, page, Some(&self.who))
    }

    pub fn follow_ups_due(
        &self,
        area: Option<AreaFilter>,
        before: NaiveDate,
        page: Page,
    ) -> Result<Vec<DueItem>> {
        index::due_before(&self.store.conn, &area, None, before, page, Some(&self.who))
    }

    pub fn search_names(&self, text: &str, limit: u32) -> Result<Vec<SearchHit>> {
        index::search_names(&self.store.conn, text, limit, Some(&self.who))
    }

    pub fn alerts(&self, area: Option<AreaFilter>, page: Page) -> Result<Vec<Alert>> {
        self.store.alerts_within(area, page, Some(&self.who))
    }

    pub fn indicators(&self, filter: &IndicatorFilter) -> Result<Indicators> {
        self.store.indicators_within(filter, Some(&self.who))
    }

    pub fn export_tables(&self, options: ExportOptions, by: Role) -> Result<Vec<ExportTable>> {
        self.store
            .export_tables_within(options, Some(by), Some(&self.who))
    }

    /// Submitted visits waiting for review: those that found forced-labour indicators first,
    /// then those with a violation, then the longest waiting.
    pub fn review_queue(&self, page: Page) -> Result<Vec<ReviewItem>> {
        let mut f = Filter::default();
        // A literal, so that the planner may use the queue's partial index (migration 010).
        f.add_all("v.status = 'submitted'", Vec::new());
        f.within("v", RecordKind::Visit, Some(&self.who));
        let (tail, params) = f.finish(
            "(v.fl_mask != 0) DESC, v.violation DESC, v.started_ms, v.record",
            page,
        );
        let visits = index::visit_rows(&self.store.conn, &tail, params)?;
        let mut stmt = self.store.conn.prepare_cached(
            "SELECT v.fl_mask, v.violation FROM visit_index v JOIN records r ON r.rowid = v.record
             WHERE r.id = ?1",
        )?;
        visits
            .into_iter()
            .map(|visit| {
                let (mask, violation): (i64, bool) =
                    stmt.query_row([visit.id.as_bytes()], |r| Ok((r.get(0)?, r.get(1)?)))?;
                Ok(ReviewItem {
                    visit,
                    forced_labour: mask != 0,
                    violation,
                })
            })
            .collect()
    }

    /// The map's points for visits started in `[from, until)`: every workplace with a point,
    /// coloured by the worst alert among its visits and its cases in the period, and up to
    /// `max_visits` visits made there with a point, the most urgent first.
    pub fn places(&self, from: NaiveDate, until: NaiveDate, max_visits: usize) -> Result<Places> {
        let conn = &self.store.conn;
        let (from, until) = (ms(from), ms(until));
        let mut out = Places::default();
        // Per workplace: its visits in the period and their worst alert.
        let mut by_workplace: HashMap<Vec<u8>, (u32, i64)> = HashMap::new();
        let mut f = Filter::default();
        f.add("v.started_ms >= ?", Sql::Integer(from));
        f.add("v.started_ms < ?", Sql::Integer(until));
        f.within("v", RecordKind::Visit, Some(&self.who));
        let sql = format!(
            "SELECT v.workplace_id, count(*), max(coalesce(a.severity, 0))
             FROM visit_index v LEFT JOIN alert_index a ON a.record = v.record {}
             GROUP BY v.workplace_id",
            f.sql()
        );
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(f.params))?;
        while let Some(row) = rows.next()? {
            by_workplace.insert(row.get(0)?, (row.get(1)?, row.get(2)?));
        }
        let mut f = Filter::default();
        f.add("c.identified_ms >= ?", Sql::Integer(from));
        f.add("c.identified_ms < ?", Sql::Integer(until));
        f.add_all("c.workplace_id IS NOT NULL", Vec::new());
        f.within("c", RecordKind::ChildCase, Some(&self.who));
        let sql = format!(
            "SELECT c.workplace_id, max(a.severity)
             FROM child_index c JOIN alert_index a ON a.record = c.record {}
             GROUP BY c.workplace_id",
            f.sql()
        );
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(f.params))?;
        while let Some(row) = rows.next()? {
            let entry = by_workplace.entry(row.get(0)?).or_default();
            entry.1 = entry.1.max(row.get(1)?);
        }
        let mut f = Filter::default();
        f.within("w", RecordKind::Workplace, Some(&self.who));
        let sql = format!(
            "SELECT r.id, p.latitude, p.longitude, w.district, w.community
             FROM place_index p JOIN workplace_index w ON w.record = p.record
             JOIN records r ON r.rowid = p.record {}",
            f.sql()
        );
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(f.params))?;
        while let Some(row) = rows.next()? {
            let id = uuid_col(row, 0)?;
            let (visits, severity) = by_workplace
                .get(id.as_bytes().as_slice())
                .copied()
                .unwrap_or_default();
            out.workplaces.push(Place {
                id,
                kind: RecordKind::Workplace,
                latitude: row.get(1)?,
                longitude: row.get(2)?,
                severity: AlertSeverity::from_i64(severity),
                visits,
                district: row.get(3)?,
                community: row.get(4)?,
            });
        }
        let mut f = Filter::default();
        f.add("v.started_ms >= ?", Sql::Integer(from));
        f.add("v.started_ms < ?", Sql::Integer(until));
        f.within("v", RecordKind::Visit, Some(&self.who));
        let where_sql = f.sql();
        let count_sql = format!(
            "SELECT count(*) FROM visit_index v JOIN place_index p ON p.record = v.record {where_sql}"
        );
        let total: i64 = conn.query_row(
            &count_sql,
            rusqlite::params_from_iter(f.params.clone()),
            |r| r.get(0),
        )?;
        let sql = format!(
            "SELECT r.id, p.latitude, p.longitude, a.severity, v.district, v.community
             FROM visit_index v JOIN place_index p ON p.record = v.record
             JOIN records r ON r.rowid = v.record
             LEFT JOIN alert_index a ON a.record = v.record {where_sql}
             ORDER BY coalesce(a.severity, 0) DESC, v.started_ms DESC LIMIT {max_visits}"
        );
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(f.params))?;
        while let Some(row) = rows.next()? {
            out.visits.push(Place {
                id: uuid_col(row, 0)?,
                kind: RecordKind::Visit,
                latitude: row.get(1)?,
                longitude: row.get(2)?,
                severity: AlertSeverity::from_i64(row.get::<_, Option<i64>>(3)?.unwrap_or(0)),
                visits: 0,
                district: row.get(4)?,
                community: row.get(5)?,
            });
        }
        out.visits_left_out = (total as usize).saturating_sub(out.visits.len());
        Ok(out)
    }
}

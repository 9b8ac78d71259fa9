//! Every query of the index rows: lists and their summaries, the due list, name search, alerts,
//! and the rows the features read (duplicates, indicators, export, peers, bundles, scope). One
//! style: a `Filter` builds the `WHERE` clause and its parameters together, and rows become
//! typed values here, never in the callers.

use crate::codec;
use crate::domain::area::{Area, AreaFilter};
use crate::domain::codes::{
    AlertSeverity, CaseStatus, ClassificationOutcome, RecordKind, Sex, VisitKind, VisitStatus,
};
use crate::domain::derived::{fold_name, joined_words, midnight_ms};
use crate::domain::rights::Scope;
use crate::error::{Error, Result, ValidationError};
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension, Row, params_from_iter};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// A page of results: `limit` rows after skipping `offset` (at most `MAX_LIMIT` a page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Page {
    #[cfg_attr(feature = "uniffi", uniffi(default = 0))]
    pub offset: i32,
    #[cfg_attr(feature = "uniffi", uniffi(default = 50))]
    pub limit: i32,
}

impl Default for Page {
    fn default() -> Page {
        Page::first(50)
    }
}

impl Page {
    pub const MAX_LIMIT: i32 = 500;

    pub fn first(limit: i32) -> Page {
        Page { offset: 0, limit }
    }

    /// The page after this one: past the rows this one held (at most `MAX_LIMIT`, whatever
    /// `limit` asked for).
    pub fn next(self) -> Page {
        Page {
            offset: self
                .offset
                .saturating_add(self.limit.clamp(0, Self::MAX_LIMIT)),
            limit: self.limit,
        }
    }

    /// `(limit, offset)` as a query takes them: a negative one is refused, naming it; a limit
    /// above `MAX_LIMIT` is `MAX_LIMIT`.
    fn bounds(self) -> Result<(i64, i64)> {
        for (field, value) in [("page.offset", self.offset), ("page.limit", self.limit)] {
            if value < 0 {
                return Err(ValidationError::new(field, "must not be negative").into());
            }
        }
        Ok((
            i64::from(self.limit.min(Self::MAX_LIMIT)),
            i64::from(self.offset),
        ))
    }
}

/// Where a walk of a query stands: the sort key of the last row it read, in the query's order
/// (opaque). Rows after it are the ones the walk has not reached, however many rows before it
/// came or went since (an offset would shift with them).
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey(Vec<Sql>);

/// A read of a query's rows: a page by offset, or the rows after where a walk stands.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Slice<'a> {
    Page(Page),
    After {
        limit: i32,
        key: Option<&'a SortKey>,
    },
}

/// Rows read, and the sort key of the last one (`SortKey`).
#[derive(Debug, Clone, PartialEq)]
pub struct Walked<R> {
    pub rows: Vec<R>,
    pub last: Option<SortKey>,
}

/// A list's order: the columns of its sort key, all ascending or all descending (the last a
/// record's rowid, so that the order is total).
pub(crate) struct Order {
    columns: &'static [&'static str],
    descending: bool,
}

impl<R> Default for Walked<R> {
    fn default() -> Self {
        Walked {
            rows: Vec::new(),
            last: None,
        }
    }
}

impl Order {
    fn sql(&self) -> String {
        let direction = if self.descending { " DESC" } else { "" };
        self.columns
            .iter()
            .map(|c| format!("{c}{direction}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The key's columns, to select after a row's own.
    fn select(&self) -> String {
        self.columns.join(", ")
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct VisitQuery {
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub area: Option<AreaFilter>,
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub status: Option<VisitStatus>,
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub workplace_id: Option<Uuid>,
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub visitor_id: Option<Uuid>,
    /// Visits started at or after this instant.
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub started_from: Option<DateTime<Utc>>,
    /// Visits started before this instant.
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub started_before: Option<DateTime<Utc>>,
}

/// A visit as the index knows it: enough for a list, without loading the document.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct VisitSummary {
    pub id: Uuid,
    pub kind: VisitKind,
    pub workplace_id: Uuid,
    pub visitor_id: Uuid,
    pub started_at: DateTime<Utc>,
    /// The day the visit started by its phone's clock (`started_at` at the offset the visit
    /// was recorded with): the day its own page, the exports and the indicators give it.
    pub started_on: NaiveDate,
    pub status: VisitStatus,
    pub district: String,
    pub community: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct ChildCaseQuery {
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub area: Option<AreaFilter>,
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub status: Option<CaseStatus>,
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub classification: Option<ClassificationOutcome>,
    /// Cases whose code is this one, or ends with it after a dash ("D1-000004" finds
    /// "CI-R1-D1-000004"), or whose last part is this number ("4" finds "…-000004"); spaces
    /// and letter case are ignored.
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub code: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct ChildCaseSummary {
    pub id: Uuid,
    pub case_code: String,
    pub name: String,
    pub sex: Sex,
    /// The age when the child was identified, when it could be established.
    pub age: Option<i32>,
    pub status: CaseStatus,
    pub classification: Option<ClassificationOutcome>,
    pub district: String,
    pub community: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct WorkplaceQuery {
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub area: Option<AreaFilter>,
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub sector: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct WorkplaceSummary {
    pub id: Uuid,
    pub name: String,
    pub sector: String,
    pub district: String,
    pub community: String,
}

/// A record with a follow-up due.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct DueItem {
    pub id: Uuid,
    pub kind: RecordKind,
    pub due: NaiveDate,
    pub assignee: Uuid,
    pub district: String,
    pub community: String,
}

#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct SearchHit {
    pub id: Uuid,
    pub kind: RecordKind,
    pub name: String,
}

/// An urgent record, as the alert rows know it: a child case (`kind` child case) or a visit.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Alert {
    pub id: Uuid,
    pub kind: RecordKind,
    pub severity: AlertSeverity,
    /// When the child was identified, or seen still working at the follow-up that raised
    /// the alert (midnight UTC of that day: `derived::case_alert_day`), or the visit started.
    pub at: DateTime<Utc>,
    pub district: String,
    pub community: String,
    /// A child case's code (none for a visit): which child each line is, on lists that look
    /// alike ("hazardous work, community 01" four times).
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub case_code: Option<String>,
}

/// A visit with what makes it urgent: a submitted one waiting for review, or one of a list
/// (`Scoped::visits_marked`).
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewItem {
    pub visit: VisitSummary,
    /// The visit found forced-labour indicators.
    pub forced_labour: bool,
    /// The alert the visit raises (`derived::visit_severity`), as the alerts list shows it.
    pub severity: Option<AlertSeverity>,
    /// A checklist item breached, or a forced-labour indicator (`derived::has_violation`).
    pub violation: bool,
    /// Children under 15 it counted at work whom its cases do not register
    /// (`Store::children_without_case`: a merged child once, an erased case not, a case filed
    /// anywhere).
    pub children_without_case: u32,
}

/// A point on the map: a workplace (coloured by the worst alert of its visits and cases in the
/// period) or a visit made in the period.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    pub id: Uuid,
    pub kind: RecordKind,
    /// A workplace's name (empty for a visit).
    pub name: String,
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
    /// Workplaces with no point (recorded with no GPS fix): on no map.
    pub workplaces_unplaced: usize,
    /// Visits of the period with no point, made at workplaces with none: on no map.
    pub visits_unplaced: usize,
}

/// Builds `WHERE` clauses and their parameters together, so they cannot disagree.
#[derive(Default)]
pub(crate) struct Filter {
    clauses: Vec<String>,
    /// The parameters, in the order the clauses number them.
    pub(crate) params: Vec<Sql>,
}

impl Filter {
    /// A clause with one `?`, and its value.
    pub(crate) fn add(&mut self, clause: &str, value: impl Into<Sql>) {
        self.add_all(clause, vec![value.into()]);
    }

    /// A clause with any number of `?` (none for a literal clause), and their values in order.
    pub(crate) fn add_all(&mut self, clause: &str, values: Vec<Sql>) {
        let numbered = self.numbered(clause, values);
        self.clauses.push(numbered);
    }

    /// `clause` with its `?` placeholders numbered after this filter's, `values` taken as
    /// theirs: for a clause placed elsewhere than the filter's own (a join's condition).
    fn numbered(&mut self, clause: &str, values: Vec<Sql>) -> String {
        let mut pieces = clause.split('?');
        let mut numbered = pieces.next().unwrap_or_default().to_string();
        for piece in pieces {
            numbered.push_str(&format!("?{}", self.params.len() + 1));
            self.params.push(Sql::Null);
            numbered.push_str(piece);
        }
        let first = self.params.len() - values.len();
        for (slot, value) in self.params[first..].iter_mut().zip(values) {
            *slot = value;
        }
        numbered
    }

    /// Keeps the rows of `alias` (a table with area columns, of records of `kind`) that
    /// `scope`'s principal receives: a kind its role works with, in its areas (`area_rule`).
    /// No scope keeps every row.
    pub(crate) fn within(&mut self, alias: &str, kind: RecordKind, scope: Option<&Scope>) {
        let Some(who) = scope else { return };
        if !who.kinds().contains(&kind) {
            self.clauses.push("0".into());
            return;
        }
        let (sql, values) = area_rule(who, alias);
        self.add_all(&format!("({sql})"), values);
    }

    /// Keeps the rows of `alias` (a table with a `kind` column and area columns) that
    /// `scope`'s principal receives (`scope_rule`). No scope keeps every row.
    pub(crate) fn within_kinds(&mut self, alias: &str, scope: Option<&Scope>) {
        if let Some(who) = scope {
            let (rule, values) = scope_rule(who, alias);
            self.add_all(&rule, values);
        }
    }

    fn add_opt<T: Into<Sql>>(&mut self, clause: &str, value: Option<T>) {
        if let Some(value) = value {
            self.add(clause, value);
        }
    }

    /// Records of the area, on the table `alias` (whose columns are named by level).
    fn area(&mut self, alias: &str, area: &Option<AreaFilter>) {
        if let Some(a) = area {
            let (level, code) = a.level_and_code();
            self.add(
                &format!("{alias}.{level} = {AREA_NUMBER}"),
                code.to_string(),
            );
        }
    }

    /// Records of any of the areas (all when there are none).
    fn any_area(&mut self, alias: &str, areas: &[AreaFilter]) {
        if areas.is_empty() {
            return;
        }
        let mut any = Vec::new();
        for a in areas {
            let (level, code) = a.level_and_code();
            self.params.push(Sql::Text(code.to_string()));
            any.push(format!(
                "{alias}.{level} = (SELECT id FROM area_codes WHERE code = ?{})",
                self.params.len()
            ));
        }
        self.clauses.push(format!("({})", any.join(" OR ")));
    }

    /// How many rows of `table` (with its alias) the filter keeps: what a list's pages hold in
    /// all, without reading them (a region's 100,000 alerts walked page by page took 26 s).
    pub(crate) fn count(self, conn: &Connection, table: &str) -> Result<u64> {
        let sql = format!("SELECT count(*) FROM {table} {}", self.sql());
        let n: i64 = conn
            .prepare_cached(&sql)?
            .query_row(params_from_iter(self.params), |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    pub(crate) fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }

    /// The statement's tail (`WHERE … ORDER BY … LIMIT … OFFSET …`) and all its parameters,
    /// for a page by offset (`order` as SQL).
    pub(crate) fn finish(self, order: &str, page: Page) -> Result<(String, Vec<Sql>)> {
        self.finish_at(order, Slice::Page(page), None)
    }

    /// `finish` in a list's `Order`, for a page or the rows after a walk's key.
    pub(crate) fn finish_in(self, order: &Order, slice: Slice<'_>) -> Result<(String, Vec<Sql>)> {
        self.finish_at(&order.sql(), slice, Some(order))
    }

    fn finish_at(
        mut self,
        order_sql: &str,
        slice: Slice<'_>,
        order: Option<&Order>,
    ) -> Result<(String, Vec<Sql>)> {
        let (limit, offset) = match slice {
            Slice::Page(page) => page.bounds()?,
            Slice::After { limit, key } => {
                let (limit, _) = Page { offset: 0, limit }.bounds()?;
                if let (Some(SortKey(values)), Some(order)) = (key, order)
                    && values.len() == order.columns.len()
                {
                    let marks = vec!["?"; values.len()].join(", ");
                    let compare = if order.descending { "<" } else { ">" };
                    self.add_all(
                        &format!("({}) {compare} ({marks})", order.select()),
                        values.clone(),
                    );
                }
                (limit, 0)
            }
        };
        let n = self.params.len();
        self.params.push(Sql::Integer(limit));
        self.params.push(Sql::Integer(offset));
        Ok((
            format!(
                "{} ORDER BY {order_sql} LIMIT ?{} OFFSET ?{}",
                self.sql(),
                n + 1,
                n + 2
            ),
            self.params,
        ))
    }
}

/// An area code as the number index tables hold for it (`area_codes`; NULL, which matches
/// nothing, for a code no record is filed under).
const AREA_NUMBER: &str = "(SELECT id FROM area_codes WHERE code = ?)";

/// The scope as SQL on a table `alias` with a `kind` column and area columns: a kind the role
/// works with, in the scope's areas (`area_rule`); `?` placeholders and their values in order.
pub(crate) fn scope_rule(scope: &Scope, alias: &str) -> (String, Vec<Sql>) {
    let kinds: Vec<String> = scope
        .kinds()
        .iter()
        .map(|k| (*k as i64).to_string())
        .collect();
    if kinds.is_empty() {
        return ("0".to_string(), Vec::new());
    }
    let (areas, params) = area_rule(scope, alias);
    (
        format!("({alias}.kind IN ({}) AND ({areas}))", kinds.join(", ")),
        params,
    )
}

/// The scope's areas as SQL on the area columns (`country`, `region`, `district`, `community`)
/// of the table `alias`, with `?` placeholders and their values in order. Each area code is
/// matched at its level and in its country only (`AreaGrant::covers`): the one home of the
/// area rule in SQL, for the hub's walk and for the queries of a principal (`Store::scoped`).
pub(crate) fn area_rule(scope: &Scope, alias: &str) -> (String, Vec<Sql>) {
    let mut params: Vec<Sql> = Vec::new();
    let areas: Vec<String> = scope
        .areas
        .grants()
        .iter()
        .map(|g| {
            params.push(Sql::Text(g.country.clone()));
            params.push(Sql::Text(g.code.clone()));
            format!(
                "({alias}.country = {AREA_NUMBER} AND {alias}.{} = {AREA_NUMBER})",
                g.level.as_str()
            )
        })
        .collect();
    let sql = if areas.is_empty() {
        "0".to_string()
    } else {
        areas.join(" OR ")
    };
    (sql, params)
}

/// Runs `sql` (a statement ending in `tail`'s parameters) and reads each row with `read`.
fn rows<T>(
    conn: &Connection,
    sql: &str,
    params: Vec<Sql>,
    read: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params_from_iter(params), read)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// `rows` of a list selecting its `order`'s key as its last columns: the rows, and the key of
/// the last.
fn walked_rows<T>(
    conn: &Connection,
    sql: &str,
    params: Vec<Sql>,
    order: &Order,
    mut read: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Walked<T>> {
    let mut last = None;
    let rows = rows(conn, sql, params, |row| {
        let width = row.as_ref().column_count();
        let key = (width - order.columns.len()..width)
            .map(|i| row.get::<_, Sql>(i))
            .collect::<rusqlite::Result<Vec<Sql>>>()?;
        last = Some(SortKey(key));
        read(row)
    })?;
    Ok(Walked { rows, last })
}

pub(crate) fn uuid_col(row: &Row, idx: usize) -> rusqlite::Result<Uuid> {
    let bytes: Vec<u8> = row.get(idx)?;
    Uuid::from_slice(&bytes).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Blob, Box::new(e))
    })
}

/// A value stored as its number (`from_i64` of its enum).
fn number_col<T>(
    row: &Row,
    idx: usize,
    from_number: impl Fn(i64) -> Option<T>,
) -> rusqlite::Result<T> {
    let n: i64 = row.get(idx)?;
    from_number(n).ok_or(rusqlite::Error::IntegralValueOutOfRange(idx, n))
}

fn kind_col(row: &Row, idx: usize) -> rusqlite::Result<RecordKind> {
    number_col(row, idx, RecordKind::from_i64)
}

fn instant_col(row: &Row, idx: usize) -> rusqlite::Result<DateTime<Utc>> {
    Ok(DateTime::from_timestamp_millis(row.get(idx)?).unwrap_or_default())
}

fn area_col(row: &Row, first: usize) -> rusqlite::Result<Area> {
    Ok(Area::new(
        &row.get::<_, String>(first)?,
        &row.get::<_, String>(first + 1)?,
        &row.get::<_, String>(first + 2)?,
        &row.get::<_, String>(first + 3)?,
    ))
}

/// A record id read from the store (`Error::DamagedDocument` if it is not 16 bytes).
pub(crate) fn uuid_of(bytes: &[u8]) -> Result<Uuid> {
    Uuid::from_slice(bytes).map_err(|_| Error::DamagedDocument {
        id: Uuid::nil(),
        reason: "a record id in the store is not 16 bytes".into(),
    })
}

// ---------------------------------------------------------------------------------------------
// Lists

/// Visits: the latest started first.
const VISIT_ORDER: Order = Order {
    columns: &["v.started_ms", "v.record"],
    descending: true,
};

pub(crate) fn visits(
    conn: &Connection,
    q: &VisitQuery,
    slice: Slice<'_>,
    scope: Option<&Scope>,
) -> Result<Walked<VisitSummary>> {
    let (tail, params) = visit_filter(q, scope).finish_in(&VISIT_ORDER, slice)?;
    let sql = format!(
        "SELECT {VISIT_COLUMNS}, {} FROM visit_index v JOIN records r ON r.rowid = v.record {tail}",
        VISIT_ORDER.select()
    );
    walked_rows(conn, &sql, params, &VISIT_ORDER, visit_summary)
}

/// `visits`, each with what makes it urgent, as the review queue marks it.
pub(crate) fn visits_marked(
    conn: &Connection,
    q: &VisitQuery,
    slice: Slice<'_>,
    scope: Option<&Scope>,
) -> Result<Walked<ReviewItem>> {
    let (tail, params) = visit_filter(q, scope).finish_in(&VISIT_ORDER, slice)?;
    let sql = format!(
        "SELECT {VISIT_COLUMNS}, {MARK_COLUMNS}, {} FROM visit_index v
         JOIN records r ON r.rowid = v.record {tail}",
        VISIT_ORDER.select()
    );
    walked_rows(conn, &sql, params, &VISIT_ORDER, review_item)
}

/// The columns `visit_summary` reads, from `visit_index v` and `records r`: the visit's id and
/// kind, the workplace's and the visitor's ids, `v.started_ms, v.status`, the district's and
/// the community's codes, `v.offset_ms`.
const VISIT_COLUMNS: &str = "r.id, v.kind, (SELECT uuid FROM referenced_ids WHERE id = v.workplace), \
     (SELECT uuid FROM referenced_ids WHERE id = v.visitor), v.started_ms, v.status, \
     (SELECT code FROM area_codes WHERE id = v.district), \
     (SELECT code FROM area_codes WHERE id = v.community), v.offset_ms";

/// The columns after `VISIT_COLUMNS` that `review_item` reads: what makes a visit urgent.
const MARK_COLUMNS: &str = "v.fl_mask, v.violation, \
     (SELECT severity FROM alert_index WHERE record = v.record), v.under_15";

/// A visit with its marks, from a row of `VISIT_COLUMNS` then `MARK_COLUMNS`.
fn review_item(row: &Row<'_>) -> rusqlite::Result<ReviewItem> {
    Ok(ReviewItem {
        visit: visit_summary(row)?,
        forced_labour: row.get::<_, i64>(9)? != 0,
        violation: row.get(10)?,
        severity: row
            .get::<_, Option<i64>>(11)?
            .and_then(AlertSeverity::from_i64),
        // The head-count: `Scoped` counts the children its cases register.
        children_without_case: row.get(12)?,
    })
}

/// The rows of `visit_index v` that `visits` lists.
fn visit_filter(q: &VisitQuery, scope: Option<&Scope>) -> Filter {
    let mut f = Filter::default();
    f.area("v", &q.area);
    f.within("v", RecordKind::Visit, scope);
    f.add_opt("v.status = ?", q.status.map(|s| s as i64));
    f.add_opt(
        "v.workplace = (SELECT id FROM referenced_ids WHERE uuid = ?)",
        q.workplace_id.map(|w| w.as_bytes().to_vec()),
    );
    f.add_opt(
        "v.visitor = (SELECT id FROM referenced_ids WHERE uuid = ?)",
        q.visitor_id.map(|u| u.as_bytes().to_vec()),
    );
    f.add_opt(
        "v.started_ms >= ?",
        q.started_from.map(|t| t.timestamp_millis()),
    );
    f.add_opt(
        "v.started_ms < ?",
        q.started_before.map(|t| t.timestamp_millis()),
    );
    f
}

/// A visit's summary from a row whose first columns are `VISIT_COLUMNS`.
fn visit_summary(row: &Row<'_>) -> rusqlite::Result<VisitSummary> {
    let started_at = instant_col(row, 4)?;
    let offset = chrono::Duration::milliseconds(row.get(8)?);
    Ok(VisitSummary {
        id: uuid_col(row, 0)?,
        kind: number_col(row, 1, VisitKind::from_i64)?,
        workplace_id: uuid_col(row, 2)?,
        visitor_id: uuid_col(row, 3)?,
        started_on: (started_at + offset).date_naive(),
        started_at,
        status: number_col(row, 5, VisitStatus::from_i64)?,
        district: row.get(6)?,
        community: row.get(7)?,
    })
}

/// Child cases: the latest identified first.
const CASE_ORDER: Order = Order {
    columns: &["c.identified_ms", "c.record"],
    descending: true,
};

/// Child cases; with `name`, those whose name matches it (`search_names`).
pub(crate) fn child_cases(
    conn: &Connection,
    q: &ChildCaseQuery,
    slice: Slice<'_>,
    scope: Option<&Scope>,
    name: Option<&str>,
) -> Result<Walked<ChildCaseSummary>> {
    let mut f = Filter::default();
    f.area("c", &q.area);
    f.within("c", RecordKind::ChildCase, scope);
    if let Some(text) = name {
        let Some(query) = fts_query(text) else {
            return Ok(Walked::default());
        };
        f.add(
            "c.record IN (SELECT rowid FROM name_search WHERE name_search MATCH ?)",
            query,
        );
    }
    // A merged duplicate is found through the case it was merged into.
    f.add("c.merged = ?", 0);
    f.add_opt("c.status = ?", q.status.map(|s| s as i64));
    f.add_opt("c.classification = ?", q.classification.map(|c| c as i64));
    if let Some(code) = &q.code {
        let typed = crate::domain::derived::fold_code(code);
        if typed.is_empty() {
            return Ok(Walked::default());
        }
        // A number alone matches the code's last part as a number: the digits that end the
        // code, after a dash or as the whole code.
        // Up to 18 digits on either side: SQLite's integers stop at 19, and a longer number
        // would be read as the largest one.
        let number = typed.parse::<u64>().ok().filter(|n| *n < 10u64.pow(18));
        let number = number.and_then(|n| i64::try_from(n).ok());
        let code_of = |alias: &str| {
            let sql = format!(
                "(upper({alias}.case_code) = ?
                  OR substr(upper({alias}.case_code), -(length(?) + 1)) = '-' || ?
                  OR (? IS NOT NULL AND rtrim({alias}.case_code, '0123456789') <> {alias}.case_code
                      AND (rtrim({alias}.case_code, '0123456789') = ''
                           OR substr(rtrim({alias}.case_code, '0123456789'), -1) = '-')
                      AND length(ltrim(substr({alias}.case_code,
                                              length(rtrim({alias}.case_code, '0123456789')) + 1),
                                       '0'))
                          <= 18
                      AND CAST(substr({alias}.case_code,
                                      length(rtrim({alias}.case_code, '0123456789')) + 1)
                               AS INTEGER) = ?))"
            );
            let values = vec![
                Sql::Text(typed.clone()),
                Sql::Text(typed.clone()),
                Sql::Text(typed.clone()),
                number.map_or(Sql::Null, Sql::Integer),
                number.map_or(Sql::Null, Sql::Integer),
            ];
            (sql, values)
        };
        // The code of a registration merged into another finds the case kept at the end of
        // its merges (a chain walked once per case: `UNION` stops a cycle an altered app
        // wrote), when the registration is one the reader receives.
        let (own, mut values) = code_of("c");
        let (merged, merged_values) = code_of("d");
        values.extend(merged_values);
        let (merged_scope, scope_values) = match scope {
            Some(who) if who.kinds().contains(&RecordKind::ChildCase) => area_rule(who, "d"),
            Some(_) => ("0".to_string(), Vec::new()),
            None => ("1".to_string(), Vec::new()),
        };
        values.extend(scope_values);
        f.add_all(
            &format!(
                "({own} OR r.id IN (
                    WITH RECURSIVE kept(id) AS (
                        SELECT ri.uuid FROM child_index d
                        JOIN referenced_ids ri ON ri.id = d.merged_into
                        WHERE {merged} AND ({merged_scope})
                        UNION
                        SELECT ri.uuid FROM kept
                        JOIN records k ON k.id = kept.id
                        JOIN child_index d ON d.record = k.rowid
                        JOIN referenced_ids ri ON ri.id = d.merged_into)
                    SELECT id FROM kept))"
            ),
            values,
        );
    }
    let (tail, params) = f.finish_in(&CASE_ORDER, slice)?;
    let sql = format!(
        "SELECT r.id, c.case_code, c.name, c.sex, c.age, c.status, c.classification, (SELECT code FROM area_codes WHERE id = c.district), (SELECT code FROM area_codes WHERE id = c.community), {}
         FROM child_index c JOIN records r ON r.rowid = c.record {tail}",
        CASE_ORDER.select()
    );
    walked_rows(conn, &sql, params, &CASE_ORDER, |row| {
        Ok(ChildCaseSummary {
            id: uuid_col(row, 0)?,
            case_code: row.get(1)?,
            name: row.get(2)?,
            sex: number_col(row, 3, Sex::from_i64)?,
            age: row.get(4)?,
            status: number_col(row, 5, CaseStatus::from_i64)?,
            classification: row
                .get::<_, Option<i64>>(6)?
                .and_then(ClassificationOutcome::from_i64),
            district: row.get(7)?,
            community: row.get(8)?,
        })
    })
}

/// Workplaces: by name, as people sort them (`NAME_COLLATION`).
const WORKPLACE_ORDER: Order = Order {
    columns: &["w.name COLLATE vigie_name", "w.record"],
    descending: false,
};

pub(crate) fn workplaces(
    conn: &Connection,
    q: &WorkplaceQuery,
    slice: Slice<'_>,
    scope: Option<&Scope>,
) -> Result<Walked<WorkplaceSummary>> {
    let mut f = Filter::default();
    f.area("w", &q.area);
    f.within("w", RecordKind::Workplace, scope);
    f.add_opt("w.sector = ?", q.sector.clone());
    let (tail, params) = f.finish_in(&WORKPLACE_ORDER, slice)?;
    let sql = format!(
        "SELECT r.id, w.name, w.sector, (SELECT code FROM area_codes WHERE id = w.district), (SELECT code FROM area_codes WHERE id = w.community), {}
         FROM workplace_index w JOIN records r ON r.rowid = w.record {tail}",
        WORKPLACE_ORDER.select()
    );
    walked_rows(conn, &sql, params, &WORKPLACE_ORDER, |row| {
        Ok(WorkplaceSummary {
            id: uuid_col(row, 0)?,
            name: row.get(1)?,
            sector: row.get(2)?,
            district: row.get(3)?,
            community: row.get(4)?,
        })
    })
}

/// Follow-ups due: the soonest first.
const DUE_ORDER: Order = Order {
    columns: &["d.due_ms", "d.record"],
    descending: false,
};

pub(crate) fn due_before(
    conn: &Connection,
    area: &Option<AreaFilter>,
    assignee: Option<Uuid>,
    before: NaiveDate,
    slice: Slice<'_>,
    scope: Option<&Scope>,
    kind: Option<RecordKind>,
) -> Result<Walked<DueItem>> {
    let f = due_filter(area, assignee, before, scope, kind, today_ms(conn)?);
    let (tail, params) = f.finish_in(&DUE_ORDER, slice)?;
    let sql = format!(
        "SELECT r.id, d.kind, d.due_ms, (SELECT uuid FROM referenced_ids WHERE id = d.assignee), (SELECT code FROM area_codes WHERE id = d.district), (SELECT code FROM area_codes WHERE id = d.community), {}
         FROM due_index d JOIN records r ON r.rowid = d.record {tail}",
        DUE_ORDER.select()
    );
    walked_rows(conn, &sql, params, &DUE_ORDER, |row| {
        Ok(DueItem {
            id: uuid_col(row, 0)?,
            kind: kind_col(row, 1)?,
            due: instant_col(row, 2)?.date_naive(),
            assignee: uuid_col(row, 3)?,
            district: row.get(4)?,
            community: row.get(5)?,
        })
    })
}

/// How many follow-ups `due_before` lists in all.
pub(crate) fn due_count(
    conn: &Connection,
    area: &Option<AreaFilter>,
    assignee: Option<Uuid>,
    before: NaiveDate,
    scope: Option<&Scope>,
    kind: Option<RecordKind>,
) -> Result<u64> {
    due_filter(area, assignee, before, scope, kind, today_ms(conn)?).count(conn, "due_index d")
}

/// The rows of `due_index d` that `due_before` lists.
fn due_filter(
    area: &Option<AreaFilter>,
    assignee: Option<Uuid>,
    before: NaiveDate,
    scope: Option<&Scope>,
    kind: Option<RecordKind>,
    today_ms: i64,
) -> Filter {
    let mut f = Filter::default();
    f.area("d", area);
    // Due items are visits' and cases': the rule keeps those the role works with.
    f.within_kinds("d", scope);
    f.add_opt("d.kind = ?", kind.map(|k| k as i64));
    f.add_opt(
        "d.assignee = (SELECT id FROM referenced_ids WHERE uuid = ?)",
        assignee.map(|a| a.as_bytes().to_vec()),
    );
    f.add("d.due_ms < ?", midnight_ms(before));
    // Today, whatever day the list runs to: a follow-up due before the birthday is due until
    // the child is 18, as a case's alert stands until then.
    f.add("(d.adult_ms IS NULL OR d.adult_ms > ?)", today_ms);
    f.add_all(&VISIT_DUE_ANSWERED, Vec::new());
    f
}

/// A visit's planned re-inspection (`follow_up_due`) is answered by a later inspection or
/// follow-up visit to its workplace, made (past its draft) at most `EARLY_FOLLOW_UP_DAYS`
/// before the planned day, as a case's follow-up answers one planned: derived from the visits held, whatever
/// path brought them (a community monitor's round is not the inspector's check). The later
/// visit's day is its local one, as everywhere a visit is dated (`LOCAL_START_FROM`): by its
/// UTC instant, a visit on the fourteenth day before, made at UTC+14, did not answer it.
static VISIT_DUE_ANSWERED: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "NOT (d.kind = {visit} AND EXISTS (
            SELECT 1 FROM visit_index planned JOIN visit_index later
                ON later.workplace = planned.workplace AND later.started_ms > planned.started_ms
            WHERE planned.record = d.record AND later.kind IN ({inspection}, {follow_up})
                AND later.status != {draft}
                AND later.started_ms + later.offset_ms >= d.due_ms - {early_ms}))",
        visit = RecordKind::Visit as i64,
        draft = VisitStatus::Draft as i64,
        inspection = VisitKind::LabourInspection as i64,
        follow_up = VisitKind::FollowUp as i64,
        early_ms = crate::domain::classify::EARLY_FOLLOW_UP_DAYS * 86_400_000,
    )
});

/// An alert row still in force on the day given: not a case whose child has turned 18 since it
/// was written.
const ALERT_IN_FORCE: &str = "(a.adult_ms IS NULL OR a.adult_ms > ?)";

/// Today at midnight, the day alert rows are judged against: the device's own day, as a
/// verification is dated (a phone west of UTC would otherwise drop a child turned 18 from its
/// alerts the evening before the birthday), by its clock as the last sync set it right
/// (`sync_state::judged_now_ms`).
fn today_ms(conn: &Connection) -> Result<i64> {
    let now = crate::store::sync_state::judged_now_ms(conn)?;
    let day = chrono::DateTime::from_timestamp_millis(now).map_or_else(
        || chrono::Local::now().date_naive(),
        |t| t.with_timezone(&chrono::Local).date_naive(),
    );
    Ok(midnight_ms(day))
}

/// Alerts: the most urgent first, the latest first within each urgency.
const ALERT_ORDER: Order = Order {
    columns: &["a.severity", "a.at_ms", "a.record"],
    descending: true,
};

pub(crate) fn alerts(
    conn: &Connection,
    area: &Option<AreaFilter>,
    slice: Slice<'_>,
    scope: Option<&Scope>,
) -> Result<Walked<Alert>> {
    let f = alert_filter(area, scope, today_ms(conn)?);
    let (tail, params) = f.finish_in(&ALERT_ORDER, slice)?;
    let sql = format!(
        "SELECT r.id, a.kind, a.severity, a.at_ms, (SELECT code FROM area_codes WHERE id = a.district), (SELECT code FROM area_codes WHERE id = a.community), (SELECT case_code FROM child_index WHERE record = a.record), {}
         FROM alert_index a JOIN records r ON r.rowid = a.record {tail}",
        ALERT_ORDER.select()
    );
    walked_rows(conn, &sql, params, &ALERT_ORDER, |row| {
        let severity: i64 = row.get(2)?;
        Ok(Alert {
            id: uuid_col(row, 0)?,
            kind: kind_col(row, 1)?,
            severity: AlertSeverity::from_i64(severity)
                .ok_or(rusqlite::Error::IntegralValueOutOfRange(2, severity))?,
            at: instant_col(row, 3)?,
            district: row.get(4)?,
            community: row.get(5)?,
            case_code: row.get(6)?,
        })
    })
}

/// How many alerts `alerts` lists in all.
pub(crate) fn alert_count(
    conn: &Connection,
    area: &Option<AreaFilter>,
    scope: Option<&Scope>,
) -> Result<u64> {
    alert_filter(area, scope, today_ms(conn)?).count(conn, "alert_index a")
}

/// The rows of `alert_index a` that `alerts` lists.
fn alert_filter(area: &Option<AreaFilter>, scope: Option<&Scope>, today_ms: i64) -> Filter {
    let mut f = Filter::default();
    f.area("a", area);
    f.within_kinds("a", scope);
    f.add(ALERT_IN_FORCE, today_ms);
    f
}

/// Turns what a person typed into an FTS5 query that cannot be a syntax error: folded as names
/// are indexed (`derived::fold_name`), every word is quoted and matched as a prefix. The words
/// are also looked for run together (`derived::joined_words`: "n'guessan" or "n guessan" as
/// "nguessan"), as names are indexed both ways (`derived::search_terms`).
fn fts_query(text: &str) -> Option<String> {
    let quoted = |words: Vec<String>| -> Vec<String> {
        words.into_iter().map(|w| format!("\"{w}\"*")).collect()
    };
    let split = quoted(
        fold_name(text)
            .split(' ')
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect(),
    );
    let joined = quoted(joined_words(text));
    if split.is_empty() {
        None
    } else if joined == split || joined.is_empty() {
        Some(split.join(" "))
    } else {
        Some(format!("({}) OR ({})", split.join(" "), joined.join(" ")))
    }
}

/// The cases that name `visit` as the one they were identified on, merged duplicates
/// included, within `scope` when given.
pub(crate) fn cases_identified_on(
    conn: &Connection,
    visit: Uuid,
    scope: Option<&Scope>,
) -> Result<Vec<Uuid>> {
    let mut f = Filter::default();
    f.add(
        "c.visit = (SELECT id FROM referenced_ids WHERE uuid = ?)",
        visit.as_bytes().to_vec(),
    );
    f.within("c", RecordKind::ChildCase, scope);
    let sql = format!(
        "SELECT r.id FROM child_index c JOIN records r ON r.rowid = c.record {}",
        f.sql()
    );
    rows(conn, &sql, f.params, |row| uuid_col(row, 0))
}

pub(crate) fn search_names(
    conn: &Connection,
    text: &str,
    kind: Option<RecordKind>,
    page: Page,
    scope: Option<&Scope>,
) -> Result<Vec<SearchHit>> {
    let Some(query) = fts_query(text) else {
        return Ok(Vec::new());
    };
    let mut f = Filter::default();
    f.add("name_search MATCH ?", query);
    f.add_opt("r.kind = ?", kind.map(|k| k as i64));
    // A duplicate merged into another case leaves the search as it leaves the lists and the
    // console's search.
    f.add_all(
        "NOT EXISTS (SELECT 1 FROM child_index m WHERE m.record = s.rowid AND m.merged)",
        Vec::new(),
    );
    if let Some(who) = scope {
        let (rule, values) = scope_rule(who, "sc");
        f.add_all(
            &format!("EXISTS (SELECT 1 FROM scope_index sc WHERE sc.record = s.rowid AND {rule})"),
            values,
        );
    }
    let (tail, params) = f.finish("rank, s.rowid", page)?;
    let sql = format!(
        "SELECT r.id, r.kind, s.name FROM name_search s JOIN records r ON r.rowid = s.rowid {tail}"
    );
    rows(conn, &sql, params, |row| {
        Ok(SearchHit {
            id: uuid_col(row, 0)?,
            kind: kind_col(row, 1)?,
            name: row.get(2)?,
        })
    })
}

// ---------------------------------------------------------------------------------------------
// Records

/// Every record the store holds, with its kind.
pub(crate) fn records_held(conn: &Connection) -> Result<Vec<(Uuid, RecordKind)>> {
    let rows = rows(
        conn,
        "SELECT id, kind FROM records ORDER BY rowid",
        Vec::new(),
        |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)),
    )?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, kind)| Some((Uuid::from_slice(&id).ok()?, RecordKind::from_i64(kind)?)))
        .collect())
}

pub(crate) fn count(conn: &Connection, kind: RecordKind) -> Result<u64> {
    let n: i64 = conn
        .prepare_cached("SELECT count(*) FROM records WHERE kind = ?1")?
        .query_row([kind as i64], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The ids of every record of a kind, in id order.
pub(crate) fn ids_of_kind(conn: &Connection, kind: RecordKind) -> Result<Vec<Uuid>> {
    // Users through their index, its rows the outer loop (CROSS JOIN) and sorted here: a hub
    // lists its fifty users among 150,000 records (no index on the kind), and the planner,
    // asked for them in id order, walked every record (a quarter of a second).
    if kind == RecordKind::User {
        let mut users = ids(
            conn,
            "SELECT r.id FROM user_index u CROSS JOIN records r ON r.rowid = u.record
             WHERE r.kind = ?1",
            kind,
        )?;
        users.sort();
        return Ok(users);
    }
    ids(
        conn,
        "SELECT id FROM records WHERE kind = ?1 ORDER BY id",
        kind,
    )
}

/// The ids of every record of a kind (that `scope` receives, when given), in id order: the
/// order they were created (ids are UUIDv7), the same on every store and backend (an export
/// of one hub on SQLite and on PostgreSQL listed its rows in two orders).
pub(crate) fn ids_within(
    conn: &Connection,
    kind: RecordKind,
    scope: Option<&Scope>,
) -> Result<Vec<Uuid>> {
    let mut f = Filter::default();
    f.add("r.kind = ?", kind as i64);
    f.within("s", kind, scope);
    let sql = format!(
        "SELECT r.id FROM records r LEFT JOIN scope_index s ON s.record = r.rowid {} ORDER BY r.id",
        f.sql()
    );
    let ids = rows(conn, &sql, f.params, |r| r.get::<_, Vec<u8>>(0))?;
    ids.iter().map(|bytes| uuid_of(bytes)).collect()
}

fn ids(conn: &Connection, sql: &str, kind: RecordKind) -> Result<Vec<Uuid>> {
    let ids = rows(conn, sql, vec![Sql::Integer(kind as i64)], |r| {
        r.get::<_, Vec<u8>>(0)
    })?;
    ids.iter().map(|bytes| uuid_of(bytes)).collect()
}

/// Every record filed under an area, with its kind and area (reference data, filed nowhere,
/// included with an empty area), one at a time: a region's 150,000 records held at once took
/// 45 MB of a phone's memory when its user's scope narrowed.
pub(crate) fn each_record_with_area(
    conn: &Connection,
    mut visit: impl FnMut(AreaRows) -> Result<()>,
) -> Result<()> {
    let mut statement = conn.prepare_cached(
        "SELECT r.id, r.kind, s.country, s.region, s.district, s.community
         FROM records r JOIN scope_areas s ON s.record = r.rowid",
    )?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let Some(kind) = RecordKind::from_i64(row.get(1)?) else {
            continue;
        };
        visit(AreaRows {
            id: uuid_of(&row.get::<_, Vec<u8>>(0)?)?,
            kind,
            area: area_col(row, 2)?,
        })?;
    }
    Ok(())
}

/// How many records of each kind are filed under each area (`Store::records_by_area`).
pub(crate) fn records_by_area(conn: &Connection) -> Result<Vec<(Area, RecordKind, u64)>> {
    let mut statement = conn.prepare(
        "SELECT country, region, district, community, kind, count(*)
         FROM scope_areas GROUP BY country, region, district, community, kind",
    )?;
    let mut rows = statement.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let Some(kind) = RecordKind::from_i64(row.get(4)?) else {
            continue;
        };
        out.push((area_col(row, 0)?, kind, row.get::<_, i64>(5)?.max(0) as u64));
    }
    Ok(out)
}

/// The records filed under a community code (`Store::records_filed_under`).
pub(crate) fn records_filed_under(conn: &Connection, community: &str) -> Result<Vec<(Uuid, Area)>> {
    rows(
        conn,
        "SELECT r.id, s.country, s.region, s.district, s.community
         FROM records r JOIN scope_areas s ON s.record = r.rowid WHERE s.community = ?1",
        vec![Sql::Text(community.to_string())],
        |row| Ok((uuid_col(row, 0)?, area_col(row, 1)?)),
    )
}

/// A record and the area it is filed under (`each_record_with_area`).
pub(crate) struct AreaRows {
    pub id: Uuid,
    pub kind: RecordKind,
    pub area: Area,
}

/// The area rows of one record (none for users).
pub(crate) fn filed_under(conn: &Connection, rowid: i64) -> Result<Option<(RecordKind, Area)>> {
    let rows = rows(
        conn,
        "SELECT kind, country, region, district, community FROM scope_areas WHERE record = ?1",
        vec![Sql::Integer(rowid)],
        |row| Ok((kind_col(row, 0)?, area_col(row, 1)?)),
    )?;
    Ok(rows.into_iter().next())
}

/// Each record of `areas` (all when none) with its heads, as a peer session compares them.
pub(crate) fn heads_in(conn: &Connection, areas: &[AreaFilter]) -> Result<Vec<(Uuid, Vec<u8>)>> {
    let mut f = Filter::default();
    f.any_area("s", areas);
    let sql = format!(
        "SELECT r.id, r.heads FROM records r JOIN scope_index s ON s.record = r.rowid {}",
        f.sql()
    );
    let rows = rows(conn, &sql, f.params, |r| {
        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, heads)| Some((Uuid::from_slice(&id).ok()?, heads)))
        .collect())
}

/// Records as `(id, Automerge bytes)`.
pub(crate) type Documents = Vec<(Uuid, Vec<u8>)>;

/// Every record of `areas` (all when none) changed after change-log position `since`, as
/// Automerge bytes, in change order; and the last position of the change log.
pub(crate) fn documents_changed_after(
    conn: &Connection,
    since: i64,
    areas: &[AreaFilter],
) -> Result<(Documents, i64)> {
    let mut f = Filter::default();
    f.add("r.last_seq > ?", since);
    let join = if areas.is_empty() {
        ""
    } else {
        "JOIN scope_index s ON s.record = r.rowid"
    };
    f.any_area("s", areas);
    let sql = format!(
        "SELECT r.id, r.doc FROM records r {join} {} ORDER BY r.last_seq",
        f.sql()
    );
    let rows = rows(conn, &sql, f.params, |r| {
        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    let mut documents = Vec::with_capacity(rows.len());
    for (id, stored) in rows {
        if let Ok(id) = Uuid::from_slice(&id) {
            documents.push((id, codec::decode(id, stored)?));
        }
    }
    let mark = last_change(conn)?;
    Ok((documents, mark))
}

/// The last position of the change log (0 when nothing was ever written). It is read from
/// AUTOINCREMENT's own counter, not from the rows: a device keeps none (`write_document`), and
/// an erasure on a hub may remove the last ones.
pub(crate) fn last_change(conn: &Connection) -> Result<i64> {
    let mark: Option<i64> = conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'change_log'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(mark.unwrap_or(0))
}

// ---------------------------------------------------------------------------------------------
// What the features read

/// A child case as duplicate detection compares it (`duplicate_rows`).
pub(crate) struct CaseRow {
    pub id: Uuid,
    /// The folded name (`derived::fold_name`).
    pub name_key: String,
}

/// The unmerged cases of `community` other than `except` whose birth year is within one year of
/// `birth_year` (or unknown on either side), among those `scope` receives when given.
pub(crate) fn duplicate_rows(
    conn: &Connection,
    community: &str,
    except: Uuid,
    birth_year: Option<i32>,
    scope: Option<&Scope>,
) -> Result<Vec<CaseRow>> {
    let mut f = Filter::default();
    f.add(
        &format!("c.community = {AREA_NUMBER}"),
        community.to_string(),
    );
    f.add("r.id != ?", except.as_bytes().to_vec());
    f.add("c.merged = ?", 0);
    if let Some(year) = birth_year {
        f.add("(c.birth_year IS NULL OR abs(c.birth_year - ?) <= 1)", year);
    }
    f.within("c", RecordKind::ChildCase, scope);
    let sql = format!(
        "SELECT r.id, c.name_key FROM child_index c JOIN records r ON r.rowid = c.record {}",
        f.sql()
    );
    rows(conn, &sql, f.params, |row| {
        Ok(CaseRow {
            id: uuid_col(row, 0)?,
            name_key: row.get(1)?,
        })
    })
}

/// A child case as the indicators count it.
pub(crate) struct ChildRow {
    pub sex: Sex,
    pub age: Option<u32>,
    /// The furthest step of the cycle it reached (`derived::stage_reached`).
    pub reached: CaseStatus,
    pub classification: Option<ClassificationOutcome>,
    pub identified_ms: i64,
    pub district: String,
    pub community: String,
    /// The sector of the case's workplace, when the workplace is on this device.
    pub sector: Option<String>,
}

/// The unmerged cases of an area identified in `[from, until)`.
pub(crate) fn child_rows(
    conn: &Connection,
    area: &Option<AreaFilter>,
    from: Option<NaiveDate>,
    until: Option<NaiveDate>,
    scope: Option<&Scope>,
) -> Result<Vec<ChildRow>> {
    let mut f = Filter::default();
    f.area("c", area);
    f.within("c", RecordKind::ChildCase, scope);
    f.add("c.merged = ?", 0);
    f.add_opt("c.identified_ms >= ?", from.map(midnight_ms));
    f.add_opt("c.identified_ms < ?", until.map(midnight_ms));
    // A workplace the principal does not receive (a case of its district working in another)
    // gives no sector, as on its phone, which does not hold it.
    let workplace_seen = match scope {
        None => "1".to_string(),
        Some(who) if !who.kinds().contains(&RecordKind::Workplace) => "0".to_string(),
        Some(who) => {
            let (sql, values) = area_rule(who, "w");
            f.numbered(&format!("({sql})"), values)
        }
    };
    let sql = format!(
        "SELECT c.sex, c.age, c.reached, c.classification, c.identified_ms, (SELECT code FROM area_codes WHERE id = c.district),
                (SELECT code FROM area_codes WHERE id = c.community), w.sector
         FROM child_index c
         LEFT JOIN referenced_ids wi ON wi.id = c.workplace
         LEFT JOIN records wr ON wr.id = wi.uuid
         LEFT JOIN workplace_index w ON w.record = wr.rowid AND {workplace_seen}
         {}",
        f.sql()
    );
    rows(conn, &sql, f.params, |row| {
        Ok(ChildRow {
            sex: number_col(row, 0, Sex::from_i64)?,
            age: row.get(1)?,
            reached: number_col(row, 2, CaseStatus::from_i64)?,
            classification: row
                .get::<_, Option<i64>>(3)?
                .and_then(ClassificationOutcome::from_i64),
            identified_ms: row.get(4)?,
            district: row.get(5)?,
            community: row.get(6)?,
            sector: row.get(7)?,
        })
    })
}

/// A visit as the indicators count it.
pub(crate) struct VisitRow {
    pub kind: VisitKind,
    pub workplace_id: Vec<u8>,
    /// `derived::forced_labour_mask`.
    pub forced_labour: i64,
    pub violation: bool,
}

/// A visit's start on its own clock (the instant plus the phone's offset), against a day's
/// midnight: periods count a visit on the day its phone gave it.
const LOCAL_START_FROM: &str = "v.started_ms + v.offset_ms >= ?";
const LOCAL_START_BEFORE: &str = "v.started_ms + v.offset_ms < ?";

/// The visits of an area started in `[from, until)`, days of their own clocks.
pub(crate) fn visit_rows(
    conn: &Connection,
    area: &Option<AreaFilter>,
    from: Option<NaiveDate>,
    until: Option<NaiveDate>,
    scope: Option<&Scope>,
) -> Result<Vec<VisitRow>> {
    let mut f = Filter::default();
    f.area("v", area);
    f.within("v", RecordKind::Visit, scope);
    // By the visit's own day (its phone's clock), as exports show it.
    f.add_opt(LOCAL_START_FROM, from.map(midnight_ms));
    f.add_opt(LOCAL_START_BEFORE, until.map(midnight_ms));
    let sql = format!(
        "SELECT v.kind, (SELECT uuid FROM referenced_ids WHERE id = v.workplace), v.fl_mask,
                v.violation
         FROM visit_index v {}",
        f.sql()
    );
    rows(conn, &sql, f.params, |row| {
        Ok(VisitRow {
            kind: number_col(row, 0, VisitKind::from_i64)?,
            workplace_id: row.get(1)?,
            forced_labour: row.get(2)?,
            violation: row.get(3)?,
        })
    })
}

// ---------------------------------------------------------------------------------------------
// What the hub's console reads (`Store::scoped`)

/// The kind of a record and the area it is filed under, from its scope row (none for users and
/// for an id the store does not hold).
pub(crate) fn filed_as(conn: &Connection, id: Uuid) -> Result<Option<(RecordKind, Area)>> {
    let rows = rows(
        conn,
        "SELECT s.kind, s.country, s.region, s.district, s.community
         FROM records r JOIN scope_areas s ON s.record = r.rowid WHERE r.id = ?1",
        vec![Sql::Blob(id.as_bytes().to_vec())],
        |row| Ok((kind_col(row, 0)?, area_col(row, 1)?)),
    )?;
    Ok(rows.into_iter().next())
}

/// Submitted visits that `scope` receives: the most urgent alert first (a worst form suspected
/// before a single weak indicator, as the alerts list ranks them), then the visits
/// (`without_case`, by row number) whose children counted no case registers, then a checklist
/// item breached; oldest first within each.
pub(crate) fn review_queue(
    conn: &Connection,
    scope: &Scope,
    page: Page,
    without_case: &HashMap<i64, u32>,
) -> Result<Vec<(i64, ReviewItem)>> {
    let (limit, offset) = page.bounds()?;
    // The keys of every visit of the queue, ranked here; the columns shown (ids and codes, a
    // lookup each) read for the page's rows only: read for the 10,000 visits of a region's
    // queue before the sort, they took most of the page's time.
    let f = review_filter(scope);
    let sql = format!(
        "SELECT v.record, coalesce((SELECT severity FROM alert_index WHERE record = v.record), 0),
                v.violation, v.started_ms
         FROM visit_index v {}",
        f.sql()
    );
    let mut keys = rows(conn, &sql, f.params, |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, bool>(2)?,
            row.get::<_, i64>(3)?,
        ))
    })?;
    keys.sort_by_key(|&(row, severity, violation, started)| {
        (
            std::cmp::Reverse(severity),
            !without_case.contains_key(&row),
            !violation,
            started,
            row,
        )
    });
    let page: Vec<i64> = keys
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(0))
        .map(|(row, ..)| row)
        .collect();
    let sql = format!(
        "SELECT {VISIT_COLUMNS}, {MARK_COLUMNS}, v.record FROM visit_index v
         JOIN records r ON r.rowid = v.record
         WHERE v.record IN (SELECT value FROM json_each(?1))"
    );
    let mut found: HashMap<i64, ReviewItem> = rows(conn, &sql, vec![row_list(&page)], |row| {
        Ok((row.get(13)?, review_item(row)?))
    })?
    .into_iter()
    .collect();
    Ok(page
        .into_iter()
        .filter_map(|row| Some((row, found.remove(&row)?)))
        .collect())
}

/// Row numbers as one parameter, a JSON array (`json_each`): one statement for any number.
fn row_list(rows: &[i64]) -> Sql {
    Sql::Text(format!(
        "[{}]",
        rows.iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    ))
}

/// The workplace of each of `visits` that `scope` receives, with its name, by visit: read from
/// the index rows (the due lists' re-inspections loaded two documents a line for them).
pub(crate) fn workplaces_of_visits(
    conn: &Connection,
    visits: &[Uuid],
    scope: &Scope,
) -> Result<HashMap<Uuid, (Uuid, String)>> {
    if visits.is_empty() {
        return Ok(HashMap::new());
    }
    let mut f = Filter::default();
    f.add_all(
        &format!("rv.id IN ({})", vec!["?"; visits.len()].join(", ")),
        visits
            .iter()
            .map(|id| Sql::Blob(id.as_bytes().to_vec()))
            .collect(),
    );
    f.within("w", RecordKind::Workplace, Some(scope));
    let sql = format!(
        "SELECT rv.id, rw.id, w.name
         FROM records rv JOIN visit_index v ON v.record = rv.rowid
         JOIN referenced_ids wi ON wi.id = v.workplace
         JOIN records rw ON rw.id = wi.uuid
         JOIN workplace_index w ON w.record = rw.rowid {}",
        f.sql()
    );
    Ok(rows(conn, &sql, f.params, |row| {
        Ok((uuid_col(row, 0)?, (uuid_col(row, 1)?, row.get(2)?)))
    })?
    .into_iter()
    .collect())
}

/// What a visit's children without a case are counted from (`Scoped::review_queue`).
pub(crate) struct Registered {
    /// The visit's row number.
    pub(crate) row: i64,
    /// The children under 15 it counted.
    pub(crate) under_15: u32,
    /// Those the cases opened on it register: cases of children under 15 (or of no age known)
    /// not merged into another. `None` where that count is not the children registered (it
    /// names a case not opened on it, or a case opened on it was merged into another: a child
    /// counted once, under the case kept): the documents tell (`Store::children_without_case`).
    pub(crate) registered: Option<u32>,
}

/// The submitted visits `review_queue` lists whose head-count holds children under 15, with
/// the children the cases opened on them register (`registered`).
pub(crate) fn registered_in_queue(conn: &Connection, scope: &Scope) -> Result<Vec<Registered>> {
    registered(conn, review_filter(scope))
}

/// The visits of rows `visits` whose head-count holds children under 15, with the children
/// the cases opened on them register (`registered`).
pub(crate) fn registered_of(conn: &Connection, visits: &[i64]) -> Result<Vec<Registered>> {
    if visits.is_empty() {
        return Ok(Vec::new());
    }
    let mut f = Filter::default();
    f.add(
        "v.record IN (SELECT value FROM json_each(?))",
        row_list(visits),
    );
    registered(conn, f)
}

/// The row numbers of the records `ids` the store holds.
pub(crate) fn rows_of(conn: &Connection, ids: &[Uuid]) -> Result<HashMap<Uuid, i64>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = format!(
        "SELECT id, rowid FROM records WHERE id IN ({})",
        vec!["?"; ids.len()].join(", ")
    );
    let params = ids
        .iter()
        .map(|id| Sql::Blob(id.as_bytes().to_vec()))
        .collect();
    Ok(rows(conn, &sql, params, |row| {
        Ok((uuid_col(row, 0)?, row.get(1)?))
    })?
    .into_iter()
    .collect())
}

/// The id of the record of row `row` (none once it is gone).
pub(crate) fn id_of_row(conn: &Connection, row: i64) -> Result<Option<Uuid>> {
    let ids = rows(
        conn,
        "SELECT id FROM records WHERE rowid = ?1",
        vec![Sql::Integer(row)],
        |row| uuid_col(row, 0),
    )?;
    Ok(ids.into_iter().next())
}

/// The visits of `visit_index v` that `f` keeps whose head-count holds children under 15, with
/// the children the cases opened on them register: in one pass over the cases opened on
/// visits, not a lookup a visit (which made a district's queue three times slower), and from
/// the indexes alone: reading a visit's own row of `records` for its id (its document beside
/// it) cost more than the rest of the query together.
fn registered(conn: &Connection, mut f: Filter) -> Result<Vec<Registered>> {
    f.add_all("v.under_15 > 0", Vec::new());
    let sql = format!(
        "SELECT v.record, v.under_15, coalesce(cc.registered, 0),
                coalesce(cc.merged, 0) > 0
                OR EXISTS (SELECT 1 FROM visit_named n WHERE n.record = v.record
                    AND NOT EXISTS (SELECT 1 FROM records rc
                        JOIN child_index c ON c.record = rc.rowid
                        JOIN referenced_ids ri ON ri.id = c.visit
                        JOIN records rv ON rv.id = ri.uuid
                        WHERE rc.id = n.child AND rv.rowid = v.record))
         FROM visit_index v
         LEFT JOIN (SELECT rv.rowid AS visit,
                           sum(c.merged = 0 AND (c.age IS NULL OR c.age < 15)) AS registered,
                           max(c.merged) AS merged
                    FROM child_index c JOIN referenced_ids ri ON ri.id = c.visit
                    JOIN records rv ON rv.id = ri.uuid
                    WHERE c.visit IS NOT NULL GROUP BY c.visit) cc
             ON cc.visit = v.record {}",
        f.sql()
    );
    rows(conn, &sql, f.params, |row| {
        let again: bool = row.get(3)?;
        Ok(Registered {
            row: row.get(0)?,
            under_15: row.get(1)?,
            registered: (!again).then(|| row.get(2)).transpose()?,
        })
    })
}

/// How many visits `review_queue` lists in all.
pub(crate) fn review_count(conn: &Connection, scope: &Scope) -> Result<u64> {
    review_filter(scope).count(conn, "visit_index v")
}

/// The rows of `visit_index v` that `review_queue` lists.
fn review_filter(scope: &Scope) -> Filter {
    let mut f = Filter::default();
    // A literal, so that the planner may use the queue's partial index (migration 014).
    let submitted = format!("v.status = {}", VisitStatus::Submitted as i64);
    f.add_all(&submitted, Vec::new());
    f.within("v", RecordKind::Visit, Some(scope));
    f
}

/// The map's points for visits started in `[from, until)` that `scope` receives: every
/// workplace with a point, coloured by the worst alert among its visits and its cases in the
/// period, and up to `max_visits` visits made there with a point, the most urgent first.
pub(crate) fn places(
    conn: &Connection,
    scope: &Scope,
    from: NaiveDate,
    until: NaiveDate,
    max_visits: usize,
) -> Result<Places> {
    let (from, until) = (midnight_ms(from), midnight_ms(until));
    let mut out = Places::default();
    // Per workplace: its visits in the period and their worst alert.
    let mut by_workplace: HashMap<Vec<u8>, (u32, i64)> = HashMap::new();
    let mut f = Filter::default();
    f.add(LOCAL_START_FROM, from);
    f.add(LOCAL_START_BEFORE, until);
    f.within("v", RecordKind::Visit, Some(scope));
    let sql = format!(
        "SELECT (SELECT uuid FROM referenced_ids WHERE id = v.workplace), count(*),
                max(coalesce(a.severity, 0))
         FROM visit_index v LEFT JOIN alert_index a ON a.record = v.record {}
         GROUP BY v.workplace",
        f.sql()
    );
    for (workplace, visits, severity) in rows(conn, &sql, f.params, |row| {
        Ok((row.get::<_, Vec<u8>>(0)?, row.get(1)?, row.get(2)?))
    })? {
        by_workplace.insert(workplace, (visits, severity));
    }
    // A case's alert by its own date, as the alerts list files it: a relapse a follow-up
    // found this month colours this month's map, not the month the child was identified.
    let mut f = Filter::default();
    f.add("a.at_ms >= ?", from);
    f.add("a.at_ms < ?", until);
    f.add_all("c.workplace IS NOT NULL", Vec::new());
    f.add(ALERT_IN_FORCE, today_ms(conn)?);
    f.within("c", RecordKind::ChildCase, Some(scope));
    let sql = format!(
        "SELECT (SELECT uuid FROM referenced_ids WHERE id = c.workplace), max(a.severity)
         FROM child_index c JOIN alert_index a ON a.record = c.record {}
         GROUP BY c.workplace",
        f.sql()
    );
    for (workplace, severity) in rows(conn, &sql, f.params, |row| {
        Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)?))
    })? {
        let entry = by_workplace.entry(workplace).or_default();
        entry.1 = entry.1.max(severity);
    }
    let mut f = Filter::default();
    f.within("w", RecordKind::Workplace, Some(scope));
    let sql = format!(
        "SELECT r.id, p.latitude, p.longitude, (SELECT code FROM area_codes WHERE id = w.district), (SELECT code FROM area_codes WHERE id = w.community), w.name
         FROM place_index p JOIN workplace_index w ON w.record = p.record
         JOIN records r ON r.rowid = p.record {}",
        f.sql()
    );
    out.workplaces = rows(conn, &sql, f.params, |row| {
        let id = uuid_col(row, 0)?;
        let (visits, severity) = by_workplace
            .get(id.as_bytes().as_slice())
            .copied()
            .unwrap_or_default();
        Ok(Place {
            id,
            kind: RecordKind::Workplace,
            name: row.get(5)?,
            latitude: row.get(1)?,
            longitude: row.get(2)?,
            severity: AlertSeverity::from_i64(severity),
            visits,
            district: row.get(3)?,
            community: row.get(4)?,
        })
    })?;
    let mut f = Filter::default();
    f.add(LOCAL_START_FROM, from);
    f.add(LOCAL_START_BEFORE, until);
    f.within("v", RecordKind::Visit, Some(scope));
    let where_sql = f.sql();
    let total: i64 = conn.query_row(
        &format!(
            "SELECT count(*) FROM visit_index v JOIN place_index p ON p.record = v.record {where_sql}"
        ),
        params_from_iter(f.params.clone()),
        |r| r.get(0),
    )?;
    let limit = i64::try_from(max_visits).unwrap_or(i64::MAX);
    let sql = format!(
        "SELECT r.id, p.latitude, p.longitude, a.severity, (SELECT code FROM area_codes WHERE id = v.district), (SELECT code FROM area_codes WHERE id = v.community)
         FROM visit_index v JOIN place_index p ON p.record = v.record
         JOIN records r ON r.rowid = v.record
         LEFT JOIN alert_index a ON a.record = v.record {where_sql}
         ORDER BY coalesce(a.severity, 0) DESC, v.started_ms DESC LIMIT {limit}"
    );
    out.visits = rows(conn, &sql, f.params, |row| {
        Ok(Place {
            id: uuid_col(row, 0)?,
            kind: RecordKind::Visit,
            name: String::new(),
            latitude: row.get(1)?,
            longitude: row.get(2)?,
            severity: row
                .get::<_, Option<i64>>(3)?
                .and_then(AlertSeverity::from_i64),
            visits: 0,
            district: row.get(4)?,
            community: row.get(5)?,
        })
    })?;
    out.visits_left_out = usize::try_from(total)
        .unwrap_or(0)
        .saturating_sub(out.visits.len());
    // What no map can draw, counted so that the page says it left them out: workplaces with
    // no point, and the period's visits with none made at them (a visit with no point of its
    // own is drawn, and counted, at its workplace's).
    let unplaced = "NOT EXISTS (SELECT 1 FROM place_index p WHERE p.record = {}.record)";
    let mut f = Filter::default();
    f.add(LOCAL_START_FROM, from);
    f.add(LOCAL_START_BEFORE, until);
    f.add_all(&unplaced.replace("{}", "v"), Vec::new());
    f.add_all(
        "NOT EXISTS (SELECT 1 FROM place_index p JOIN records rw ON rw.rowid = p.record
             WHERE rw.id = (SELECT uuid FROM referenced_ids WHERE id = v.workplace))",
        Vec::new(),
    );
    f.within("v", RecordKind::Visit, Some(scope));
    out.visits_unplaced = usize::try_from(f.count(conn, "visit_index v")?).unwrap_or(usize::MAX);
    let mut f = Filter::default();
    f.add_all(&unplaced.replace("{}", "w"), Vec::new());
    f.within("w", RecordKind::Workplace, Some(scope));
    out.workplaces_unplaced =
        usize::try_from(f.count(conn, "workplace_index w")?).unwrap_or(usize::MAX);
    Ok(out)
}

/// The records (reference data aside) a holder of `scope` would receive from the hub, by the
/// hub's own rule (`scope_rule`): what a device offers a certified peer.
pub(crate) fn ids_received_by(conn: &Connection, scope: &Scope) -> Result<HashSet<Uuid>> {
    let mut f = Filter::default();
    f.add("s.kind <> ?", RecordKind::Reference as i64);
    f.within_kinds("s", Some(scope));
    let sql = format!(
        "SELECT r.id FROM records r JOIN scope_index s ON s.record = r.rowid {}",
        f.sql()
    );
    let ids = rows(conn, &sql, f.params, |r| r.get::<_, Vec<u8>>(0))?;
    Ok(ids
        .iter()
        .filter_map(|id| Uuid::from_slice(id).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The workplaces' order names the store's collation by its text (a const cannot be
    /// formatted): the two must be the same.
    #[test]
    fn the_workplaces_are_ordered_by_the_name_collation() {
        assert_eq!(
            WORKPLACE_ORDER.columns[0],
            format!("w.name COLLATE {}", crate::store::schema::NAME_COLLATION)
        );
    }

    #[test]
    fn the_page_after_a_page_larger_than_a_query_returns_starts_after_its_rows() {
        let page = Page::first(1000);
        assert_eq!(page.next().offset, Page::MAX_LIMIT);
        assert_eq!(Page::first(20).next().offset, 20);
        assert_eq!(Page::first(-5).next().offset, 0);
    }

    /// The review queue's partial index (schema 14) names `Submitted` by its number, and
    /// `review_queue` writes the same number as a literal: were they to differ, the queue would
    /// read every visit.
    #[test]
    fn the_review_queue_and_its_partial_index_name_the_same_status() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn, |_, _| Ok(())).unwrap();
        let index: String = conn
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE name = 'visit_review_queue'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let submitted = VisitStatus::Submitted as i64;
        assert!(
            index.ends_with(&format!("WHERE status = {submitted}")),
            "{index}"
        );
        let plan: String = conn
            .query_row(
                &format!(
                    "EXPLAIN QUERY PLAN SELECT v.record FROM visit_index v
                     WHERE v.status = {submitted}
                     ORDER BY (v.fl_mask != 0) DESC, v.violation DESC, v.started_ms, v.record"
                ),
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("visit_review_queue"), "{plan}");
    }
}

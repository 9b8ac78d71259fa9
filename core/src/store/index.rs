//! Index rows derived from documents, and the queries that read them.
//!
//! Index rows are written in the same transaction as the document they come from, and can be
//! rebuilt from the documents at any time (a migration that adds an index does just that).

use crate::classify::ClassificationOutcome;
use crate::error::Result;
use crate::model::{
    Area, AreaFilter, CaseStatus, ChildCase, RecordKind, Sex, User, Visit, VisitKind, VisitStatus,
    Workplace,
};
use crate::sync::Scope;
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, Row, Transaction, params};
use uuid::Uuid;

pub(crate) enum Indexed<'a> {
    Workplace(&'a Workplace),
    Visit(&'a Visit),
    ChildCase(&'a ChildCase),
    User(&'a User),
    /// Reference data: indexed by kind only.
    Reference,
}

/// Removes the index rows of one record.
pub(crate) fn delete_rows(tx: &Transaction, rowid: i64) -> Result<()> {
    for table in [
        "workplace_index",
        "visit_index",
        "child_index",
        "user_index",
        "due_index",
        "scope_index",
        "alert_index",
        "place_index",
    ] {
        tx.prepare_cached(&format!("DELETE FROM {table} WHERE record = ?1"))?
            .execute([rowid])?;
    }
    tx.prepare_cached("DELETE FROM name_search WHERE rowid = ?1")?
        .execute([rowid])?;
    Ok(())
}

fn area_params(a: &Area) -> [&str; 4] {
    a.codes()
}

/// Writes the index rows of one record (which has none yet).
pub(crate) fn insert_rows(tx: &Transaction, rowid: i64, record: Indexed<'_>) -> Result<()> {
    // Reference data belongs to no area: its scope row, with empty codes, is what lets the hub
    // send it to everyone.
    let nowhere = Area::default();
    let scoped = match &record {
        Indexed::Workplace(w) => Some((RecordKind::Workplace, &w.location.area)),
        Indexed::Visit(v) => Some((RecordKind::Visit, &v.area)),
        Indexed::ChildCase(c) => Some((RecordKind::ChildCase, &c.area)),
        Indexed::Reference => Some((RecordKind::Reference, &nowhere)),
        Indexed::User(_) => None,
    };
    if let Some((kind, area)) = scoped {
        let [c, r, d, m] = area_params(area);
        tx.prepare_cached(
            "INSERT INTO scope_index (record, kind, country, region, district, community)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![rowid, kind as i64, c, r, d, m])?;
    }
    let place = match &record {
        Indexed::Workplace(w) => w.location.point.map(|p| (RecordKind::Workplace, p)),
        Indexed::Visit(v) => v.gps.map(|p| (RecordKind::Visit, p)),
        _ => None,
    };
    if let Some((kind, point)) = place {
        tx.prepare_cached(
            "INSERT INTO place_index (record, kind, latitude, longitude) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![rowid, kind as i64, point.latitude, point.longitude])?;
    }
    match record {
        Indexed::Workplace(w) => {
            let [c, r, d, m] = area_params(&w.location.area);
            tx.prepare_cached(
                "INSERT INTO workplace_index (record, name, sector, country, region, district, community)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![rowid, w.name, w.sector, c, r, d, m])?;
            tx.prepare_cached("INSERT INTO name_search (rowid, name) VALUES (?1, ?2)")?
                .execute(params![rowid, w.name])?;
        }
        Indexed::Visit(v) => {
            let [c, r, d, m] = area_params(&v.area);
            tx.prepare_cached(
                "INSERT INTO visit_index (record, kind, workplace_id, visitor_id, started_ms, status,
                                          country, region, district, community, fl_mask, violation)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?
            .execute(params![
                    rowid,
                    visit_kind_str(v.kind),
                    v.workplace_id.as_bytes(),
                    v.visitor_id.as_bytes(),
                    v.started_at.timestamp_millis(),
                    v.status.as_str(),
                    c,
                    r,
                    d,
                    m,
                    crate::indicators::forced_labour_mask(v),
                    crate::indicators::has_violation(v)
                ])?;
            if let Some(severity) = crate::alerts::visit_severity(v) {
                insert_alert(
                    tx,
                    rowid,
                    RecordKind::Visit,
                    severity,
                    v.started_at.timestamp_millis(),
                    &v.area,
                )?;
            }
            if let Some(due) = v.follow_up_due {
                insert_due(tx, rowid, RecordKind::Visit, due, v.visitor_id, &v.area)?;
            }
        }
        Indexed::ChildCase(k) => {
            let [c, r, d, m] = area_params(&k.area);
            tx.prepare_cached(
                "INSERT INTO child_index (record, case_code, name, sex, age, status, classification,
                                          identified_ms, country, region, district, community,
                                          birth_year, name_key, workplace_id, merged)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            )?
            .execute(params![
                    rowid,
                    k.case_code,
                    k.name,
                    sex_str(k.sex),
                    k.age_on(k.identified_on),
                    k.status.as_str(),
                    k.classification.as_ref().map(|c| c.outcome.as_str()),
                    midnight_ms(k.identified_on),
                    c,
                    r,
                    d,
                    m,
                    crate::duplicates::birth_year(k),
                    crate::duplicates::fold_name(&k.name),
                    k.workplace_id.map(|w| w.as_bytes().to_vec()),
                    k.merged_into.is_some()
                ])?;
            if let Some(severity) = crate::alerts::case_severity(k) {
                insert_alert(
                    tx,
                    rowid,
                    RecordKind::ChildCase,
                    severity,
                    midnight_ms(k.identified_on),
                    &k.area,
                )?;
            }
            if let Some(due) = k.next_follow_up_due() {
                insert_due(
                    tx,
                    rowid,
                    RecordKind::ChildCase,
                    due,
                    k.identified_by,
                    &k.area,
                )?;
            }
            tx.prepare_cached("INSERT INTO name_search (rowid, name) VALUES (?1, ?2)")?
                .execute(params![rowid, k.name])?;
        }
        Indexed::User(u) => {
            tx.prepare_cached("INSERT INTO user_index (record, name, role) VALUES (?1, ?2, ?3)")?
                .execute(params![rowid, u.name, role_str(u.role)])?;
        }
        Indexed::Reference => {}
    }
    Ok(())
}

fn midnight_ms(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis())
        .unwrap_or(0)
}

fn insert_alert(
    tx: &Transaction,
    rowid: i64,
    kind: RecordKind,
    severity: crate::alerts::AlertSeverity,
    at_ms: i64,
    area: &Area,
) -> Result<()> {
    let [c, r, d, m] = area_params(area);
    tx.prepare_cached(
        "INSERT INTO alert_index (record, kind, severity, at_ms, country, region, district, community)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![rowid, kind as i64, severity as i64, at_ms, c, r, d, m])?;
    Ok(())
}

fn insert_due(
    tx: &Transaction,
    rowid: i64,
    kind: RecordKind,
    due: NaiveDate,
    assignee: Uuid,
    area: &Area,
) -> Result<()> {
    let [c, r, d, m] = area_params(area);
    tx.prepare_cached(
        "INSERT INTO due_index (record, kind, due_date, assignee, country, region, district, community)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![rowid, kind as i64, due.to_string(), assignee.as_bytes(), c, r, d, m])?;
    Ok(())
}

fn visit_kind_str(k: VisitKind) -> &'static str {
    match k {
        VisitKind::LabourInspection => "labour_inspection",
        VisitKind::CommunityMonitoring => "community_monitoring",
        VisitKind::FollowUp => "follow_up",
    }
}

fn parse_visit_kind(s: &str) -> VisitKind {
    match s {
        "labour_inspection" => VisitKind::LabourInspection,
        "community_monitoring" => VisitKind::CommunityMonitoring,
        _ => VisitKind::FollowUp,
    }
}

fn sex_str(s: Sex) -> &'static str {
    match s {
        Sex::Female => "female",
        Sex::Male => "male",
    }
}

fn role_str(r: crate::model::Role) -> &'static str {
    match r {
        crate::model::Role::Inspector => "inspector",
        crate::model::Role::CommunityMonitor => "community_monitor",
        crate::model::Role::Supervisor => "supervisor",
        crate::model::Role::Administrator => "administrator",
    }
}

// ---------------------------------------------------------------------------------------------
// Queries

/// A page of results: `limit` rows after skipping `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: u32,
    pub limit: u32,
}

impl Page {
    pub const MAX_LIMIT: u32 = 500;

    pub fn first(limit: u32) -> Page {
        Page { offset: 0, limit }
    }

    pub fn next(self) -> Page {
        Page {
            offset: self.offset + self.limit,
            limit: self.limit,
        }
    }

    fn clamp_limit(self) -> i64 {
        i64::from(self.limit.min(Self::MAX_LIMIT))
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct VisitQuery {
    pub area: Option<AreaFilter>,
    pub status: Option<VisitStatus>,
    pub workplace_id: Option<Uuid>,
    pub visitor_id: Option<Uuid>,
    pub started_from: Option<DateTime<Utc>>,
    pub started_before: Option<DateTime<Utc>>,
}

/// A visit as the index knows it: enough for a list, without loading the document.
#[derive(Debug, Clone, PartialEq)]
pub struct VisitSummary {
    pub id: Uuid,
    pub kind: VisitKind,
    pub workplace_id: Uuid,
    pub visitor_id: Uuid,
    pub started_at: DateTime<Utc>,
    pub status: VisitStatus,
    pub district: String,
    pub community: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChildCaseQuery {
    pub area: Option<AreaFilter>,
    pub status: Option<CaseStatus>,
    pub classification: Option<ClassificationOutcome>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChildCaseSummary {
    pub id: Uuid,
    pub case_code: String,
    pub name: String,
    pub sex: Sex,
    pub age: Option<u32>,
    pub status: CaseStatus,
    pub classification: Option<ClassificationOutcome>,
    pub district: String,
    pub community: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkplaceQuery {
    pub area: Option<AreaFilter>,
    pub sector: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkplaceSummary {
    pub id: Uuid,
    pub name: String,
    pub sector: String,
    pub district: String,
    pub community: String,
}

/// A record with a follow-up due.
#[derive(Debug, Clone, PartialEq)]
pub struct DueItem {
    pub id: Uuid,
    pub kind: RecordKind,
    pub due: NaiveDate,
    pub assignee: Uuid,
    pub district: String,
    pub community: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub id: Uuid,
    pub kind: RecordKind,
    pub name: String,
}

/// Builds `WHERE` clauses and their parameters together, so they cannot disagree.
#[derive(Default)]
pub(crate) struct Filter {
    clauses: Vec<String>,
    pub(crate) params: Vec<Sql>,
}

impl Filter {
    pub(crate) fn add(&mut self, clause: &str, value: Sql) {
        self.params.push(value);
        self.clauses
            .push(clause.replace('?', &format!("?{}", self.params.len())));
    }

    /// Adds a clause with several `?` placeholders, numbered in order.
    pub(crate) fn add_all(&mut self, clause: &str, values: Vec<Sql>) {
        let mut numbered = String::with_capacity(clause.len() + 8);
        for (i, piece) in clause.split('?').enumerate() {
            if i > 0 {
                self.params.push(Sql::Null);
                numbered.push_str(&format!("?{}", self.params.len()));
            }
            numbered.push_str(piece);
        }
        let first = self.params.len() - values.len();
        for (slot, value) in self.params[first..].iter_mut().zip(values) {
            *slot = value;
        }
        self.clauses.push(numbered);
    }

    /// Keeps the rows of `alias` (a table with area columns) that `scope`'s principal receives:
    /// its areas (the hub's rule, `hub_storage::area_rule`) and a kind its role works with.
    pub(crate) fn within(&mut self, alias: &str, kind: RecordKind, scope: Option<&Scope>) {
        let Some(who) = scope else { return };
        if !who.kinds().contains(&kind) {
            self.clauses.push("0".into());
            return;
        }
        let (sql, values) = crate::sync::area_rule(who, alias);
        self.add_all(&format!("({sql})"), values);
    }

    /// Keeps the rows of `alias` (a table with `kind` and area columns) of a kind the scope's
    /// role works with, in its areas (`sync::scope_rule`).
    pub(crate) fn within_kinds(&mut self, alias: &str, scope: &Scope) {
        let (rule, values) = crate::sync::scope_rule(scope, alias);
        self.add_all(&rule, values);
    }

    pub(crate) fn area(&mut self, alias: &str, area: &Option<AreaFilter>) {
        if let Some(a) = area {
            let (column, code) = a.column_and_code();
            self.add(
                &format!("{alias}.{column} = ?"),
                Sql::Text(code.to_string()),
            );
        }
    }

    pub(crate) fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }

    /// The statement's tail (`WHERE … ORDER BY … LIMIT … OFFSET …`) and all its parameters.
    pub(crate) fn finish(mut self, order: &str, page: Page) -> (String, Vec<Sql>) {
        let n = self.params.len();
        self.params.push(Sql::Integer(page.clamp_limit()));
        self.params.push(Sql::Integer(i64::from(page.offset)));
        (
            format!(
                "{} ORDER BY {order} LIMIT ?{} OFFSET ?{}",
                self.sql(),
                n + 1,
                n + 2
            ),
            self.params,
        )
    }
}

pub(crate) fn uuid_col(row: &Row, idx: usize) -> rusqlite::Result<Uuid> {
    let bytes: Vec<u8> = row.get(idx)?;
    Uuid::from_slice(&bytes).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Blob, Box::new(e))
    })
}

fn parse_enum<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
}

pub(crate) fn visits(
    conn: &Connection,
    q: &VisitQuery,
    page: Page,
    scope: Option<&Scope>,
) -> Result<Vec<VisitSummary>> {
    let mut f = Filter::default();
    f.area("v", &q.area);
    f.within("v", RecordKind::Visit, scope);
    if let Some(s) = q.status {
        f.add("v.status = ?", Sql::Text(s.as_str().into()));
    }
    if let Some(w) = q.workplace_id {
        f.add("v.workplace_id = ?", Sql::Blob(w.as_bytes().to_vec()));
    }
    if let Some(u) = q.visitor_id {
        f.add("v.visitor_id = ?", Sql::Blob(u.as_bytes().to_vec()));
    }
    if let Some(t) = q.started_from {
        f.add("v.started_ms >= ?", Sql::Integer(t.timestamp_millis()));
    }
    if let Some(t) = q.started_before {
        f.add("v.started_ms < ?", Sql::Integer(t.timestamp_millis()));
    }
    let (tail, params) = f.finish("v.started_ms DESC, v.record DESC", page);
    visit_rows(conn, &tail, params)
}

/// Visits as `VisitSummary`, with the statement's tail (`WHERE … ORDER BY … LIMIT …`) on
/// `visit_index v`.
pub(crate) fn visit_rows(
    conn: &Connection,
    tail: &str,
    params: Vec<Sql>,
) -> Result<Vec<VisitSummary>> {
    let sql = format!(
        "SELECT r.id, v.kind, v.workplace_id, v.visitor_id, v.started_ms, v.status, v.district, v.community
         FROM visit_index v JOIN records r ON r.rowid = v.record {tail}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(params), |row| {
        Ok(VisitSummary {
            id: uuid_col(row, 0)?,
            kind: parse_visit_kind(&row.get::<_, String>(1)?),
            workplace_id: uuid_col(row, 2)?,
            visitor_id: uuid_col(row, 3)?,
            started_at: DateTime::from_timestamp_millis(row.get(4)?).unwrap_or_default(),
            status: parse_enum(&row.get::<_, String>(5)?).unwrap_or(VisitStatus::Draft),
            district: row.get(6)?,
            community: row.get(7)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(crate) fn child_cases(
    conn: &Connection,
    q: &ChildCaseQuery,
    page: Page,
    scope: Option<&Scope>,
    name: Option<&str>,
) -> Result<Vec<ChildCaseSummary>> {
    let mut f = Filter::default();
    f.area("c", &q.area);
    f.within("c", RecordKind::ChildCase, scope);
    if let Some(text) = name {
        match fts_query(text) {
            Some(query) => f.add(
                "c.record IN (SELECT rowid FROM name_search WHERE name_search MATCH ?)",
                Sql::Text(query),
            ),
            None => return Ok(Vec::new()),
        }
    }
    if let Some(s) = q.status {
        f.add("c.status = ?", Sql::Text(s.as_str().into()));
    }
    if let Some(c) = q.classification {
        f.add("c.classification = ?", Sql::Text(c.as_str().into()));
    }
    let (tail, params) = f.finish("c.identified_ms DESC, c.record DESC", page);
    let sql = format!(
        "SELECT r.id, c.case_code, c.name, c.sex, c.age, c.status, c.classification, c.district, c.community
         FROM child_index c JOIN records r ON r.rowid = c.record {tail}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(params), |row| {
        Ok(ChildCaseSummary {
            id: uuid_col(row, 0)?,
            case_code: row.get(1)?,
            name: row.get(2)?,
            sex: parse_enum(&row.get::<_, String>(3)?).unwrap_or(Sex::Female),
            age: row.get(4)?,
            status: parse_enum(&row.get::<_, String>(5)?).unwrap_or(CaseStatus::Identified),
            classification: row
                .get::<_, Option<String>>(6)?
                .and_then(|s| parse_enum(&s)),
            district: row.get(7)?,
            community: row.get(8)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(crate) fn workplaces(
    conn: &Connection,
    q: &WorkplaceQuery,
    page: Page,
    scope: Option<&Scope>,
) -> Result<Vec<WorkplaceSummary>> {
    let mut f = Filter::default();
    f.area("w", &q.area);
    f.within("w", RecordKind::Workplace, scope);
    if let Some(s) = &q.sector {
        f.add("w.sector = ?", Sql::Text(s.clone()));
    }
    let (tail, params) = f.finish("w.name COLLATE NOCASE, w.record", page);
    let sql = format!(
        "SELECT r.id, w.name, w.sector, w.district, w.community
         FROM workplace_index w JOIN records r ON r.rowid = w.record {tail}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(params), |row| {
        Ok(WorkplaceSummary {
            id: uuid_col(row, 0)?,
            name: row.get(1)?,
            sector: row.get(2)?,
            district: row.get(3)?,
            community: row.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(crate) fn due_before(
    conn: &Connection,
    area: &Option<AreaFilter>,
    assignee: Option<Uuid>,
    before: NaiveDate,
    page: Page,
    scope: Option<&Scope>,
) -> Result<Vec<DueItem>> {
    let mut f = Filter::default();
    f.area("d", area);
    if let Some(who) = scope {
        // Due items are visits' and cases': the clause keeps those the role works with.
        f.within_kinds("d", who);
    }
    if let Some(a) = assignee {
        f.add("d.assignee = ?", Sql::Blob(a.as_bytes().to_vec()));
    }
    f.add("d.due_date < ?", Sql::Text(before.to_string()));
    let (tail, params) = f.finish("d.due_date, d.record", page);
    let sql = format!(
        "SELECT r.id, d.kind, d.due_date, d.assignee, d.district, d.community
         FROM due_index d JOIN records r ON r.rowid = d.record {tail}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(params), |row| {
        Ok(DueItem {
            id: uuid_col(row, 0)?,
            kind: RecordKind::from_i64(row.get(1)?).unwrap_or(RecordKind::Visit),
            due: row.get::<_, String>(2)?.parse().unwrap_or(NaiveDate::MIN),
            assignee: uuid_col(row, 3)?,
            district: row.get(4)?,
            community: row.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Turns what a person typed into an FTS5 query that cannot be a syntax error: every word is
/// quoted and matched as a prefix.
fn fts_query(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{w}\"*"))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

pub(crate) fn search_names(
    conn: &Connection,
    text: &str,
    limit: u32,
    scope: Option<&Scope>,
) -> Result<Vec<SearchHit>> {
    let Some(query) = fts_query(text) else {
        return Ok(Vec::new());
    };
    let mut f = Filter::default();
    f.add("name_search MATCH ?", Sql::Text(query));
    if let Some(who) = scope {
        let (rule, values) = crate::sync::scope_rule(who, "sc");
        f.add_all(
            &format!("EXISTS (SELECT 1 FROM scope_index sc WHERE sc.record = s.rowid AND {rule})"),
            values,
        );
    }
    let (tail, params) = f.finish("rank", Page::first(limit));
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT r.id, r.kind, s.name FROM name_search s JOIN records r ON r.rowid = s.rowid {tail}"
    ))?;
    let rows = stmt.query_map(rusqlite::params_from_iter(params), |row| {
        Ok(SearchHit {
            id: uuid_col(row, 0)?,
            kind: RecordKind::from_i64(row.get(1)?).unwrap_or(RecordKind::Workplace),
            name: row.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

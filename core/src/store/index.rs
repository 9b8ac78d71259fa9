//! Index rows derived from documents (`queries` reads them).
//!
//! Index rows are written in the same transaction as the document they come from, and can be
//! rebuilt from the documents at any time (a migration that adds an index does just that).
//! Every value they hold is derived by the domain (`domain::derived`), is a stored code or
//! number (`domain::codes`), or is the number of an area code in `area_codes` (`area_numbers`) or of
//! a record or user id in `referenced_ids` (`id_number`).

use crate::domain::area::Area;
use crate::domain::codes::{AlertSeverity, RecordKind};
use crate::domain::derived::{
    birth_year, fold_name, forced_labour_mask, has_violation, midnight_ms, search_terms,
    visit_severity,
};
use crate::domain::records::{ChildCase, User, Visit, Workplace};
use crate::error::Result;
use chrono::NaiveDate;
use rusqlite::{OptionalExtension, ToSql, Transaction, params};
use uuid::Uuid;

pub(crate) enum Indexed<'a> {
    Workplace(&'a Workplace),
    /// With the day it is due for its re-inspection as its planned days side by side have it
    /// (`Visit::due_in_conflict`).
    Visit(&'a Visit, Option<NaiveDate>),
    /// With the day its child turns 18 as the readings in conflict have it
    /// (`ChildCase::adult_on_in_conflict`): the day its alert and due rows end; and its alert
    /// with its day as the readings of its follow-ups in conflict have it
    /// (`derived::case_alert_in_conflict`).
    ChildCase(
        &'a ChildCase,
        Option<NaiveDate>,
        Option<(AlertSeverity, NaiveDate)>,
    ),
    User(&'a User),
    /// Reference data: indexed by kind only.
    Reference,
}

/// The tables of index rows, one row per record at most (`record` is the record's rowid).
pub(crate) const QUERY_TABLES: [&str; 9] = [
    "workplace_index",
    "visit_index",
    // The cases a visit names, a row each (schema 34).
    "visit_named",
    "child_index",
    "user_index",
    "due_index",
    "scope_index",
    "alert_index",
    "place_index",
];

/// Removes the index rows of one record.
pub(crate) fn delete_rows(tx: &Transaction, rowid: i64) -> Result<()> {
    // A case identified on a visit leaves its alert as the other cases opened there leave it.
    let on_visit: Option<Vec<u8>> = tx
        .prepare_cached(
            "SELECT (SELECT uuid FROM referenced_ids WHERE id = c.visit)
             FROM child_index c WHERE c.record = ?1 AND c.visit IS NOT NULL",
        )?
        .query_row([rowid], |r| r.get(0))
        .optional()?
        .flatten();
    for table in QUERY_TABLES {
        tx.prepare_cached(&format!("DELETE FROM {table} WHERE record = ?1"))?
            .execute([rowid])?;
    }
    tx.prepare_cached("DELETE FROM name_search WHERE rowid = ?1")?
        .execute([rowid])?;
    if let Some(visit) = on_visit {
        refresh_visit_alert(tx, &visit)?;
    }
    Ok(())
}

/// Sets the alert of the visit whose id is `visit` to what it raises with the cases opened on
/// it now (`alert_index.with_cases`), or alone (`without_cases`): the one home of that rule,
/// whichever record came or went.
fn refresh_visit_alert(tx: &Transaction, visit: &[u8]) -> Result<()> {
    tx.prepare_cached(
        "UPDATE alert_index SET severity = CASE
             WHEN EXISTS (SELECT 1 FROM child_index c
                          WHERE c.visit = (SELECT id FROM referenced_ids WHERE uuid = ?1))
             THEN with_cases ELSE without_cases END
         WHERE record = (SELECT rowid FROM records WHERE id = ?1) AND with_cases IS NOT NULL",
    )?
    .execute([visit])?;
    Ok(())
}

/// A table that numbers values index rows hold once (`id INTEGER PRIMARY KEY` and the value,
/// unique): the statement that finds a value's number, and the one that adds the value.
struct Numbering {
    find: &'static str,
    add: &'static str,
}

const AREA_CODES: Numbering = Numbering {
    find: "SELECT id FROM area_codes WHERE code = ?1",
    add: "INSERT INTO area_codes (code) VALUES (?1)",
};

const REFERENCED_IDS: Numbering = Numbering {
    find: "SELECT id FROM referenced_ids WHERE uuid = ?1",
    add: "INSERT INTO referenced_ids (uuid) VALUES (?1)",
};

/// The number of `value` in `table`, added the first time a row names it. Numbers are never
/// removed: a number must stay what it was for the rows that hold it.
fn number_in(tx: &Transaction, table: &Numbering, value: impl ToSql) -> Result<i64> {
    let known: Option<i64> = tx
        .prepare_cached(table.find)?
        .query_row([&value], |r| r.get(0))
        .optional()?;
    Ok(match known {
        Some(number) => number,
        None => {
            tx.prepare_cached(table.add)?.execute([&value])?;
            tx.last_insert_rowid()
        }
    })
}

/// The numbers of an area's four codes in `area_codes` (country to community). There are a
/// few hundred codes.
fn area_numbers(tx: &Transaction, area: &Area) -> Result<[i64; 4]> {
    let mut numbers = [0; 4];
    for (number, code) in numbers.iter_mut().zip(area.codes()) {
        *number = number_in(tx, &AREA_CODES, code)?;
    }
    Ok(numbers)
}

/// The number of an id that index rows refer to (a workplace, a visitor, an assignee) in
/// `referenced_ids`. An id is one random number, and a phone names a few thousand workplaces
/// and users.
fn id_number(tx: &Transaction, id: Uuid) -> Result<i64> {
    number_in(tx, &REFERENCED_IDS, id.as_bytes())
}

/// Writes the index rows of one record (which has none yet). `also_named`: the record's other
/// names while its name is in conflict (`doc::concurrent_texts`), which searches find it by
/// too: the person who wrote one looks for the child under it.
pub(crate) fn insert_rows(
    tx: &Transaction,
    rowid: i64,
    record: Indexed<'_>,
    also_named: &[String],
) -> Result<()> {
    // Reference data belongs to no area: its scope row, with empty codes, is what lets the hub
    // send it to everyone.
    let nowhere = Area::default();
    let scoped = match &record {
        Indexed::Workplace(w) => Some((RecordKind::Workplace, &w.location.area)),
        Indexed::Visit(v, _) => Some((RecordKind::Visit, &v.area)),
        Indexed::ChildCase(c, ..) => Some((RecordKind::ChildCase, &c.area)),
        Indexed::Reference => Some((RecordKind::Reference, &nowhere)),
        Indexed::User(_) => None,
    };
    let Some((kind, area)) = scoped else {
        if let Indexed::User(u) = record {
            tx.prepare_cached("INSERT INTO user_index (record, name, role) VALUES (?1, ?2, ?3)")?
                .execute(params![rowid, u.name, u.role.as_str()])?;
        }
        return Ok(());
    };
    // Every row of a record is filed under the record's area.
    let numbers = area_numbers(tx, area)?;
    let [c, r, d, m] = numbers;
    tx.prepare_cached(
        "INSERT INTO scope_index (record, kind, country, region, district, community)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![rowid, kind as i64, c, r, d, m])?;
    let place = match &record {
        Indexed::Workplace(w) => w.location.point.map(|p| (RecordKind::Workplace, p)),
        Indexed::Visit(v, _) => v.gps.map(|p| (RecordKind::Visit, p)),
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
            tx.prepare_cached(
                "INSERT INTO workplace_index (record, name, sector, country, region, district, community)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![rowid, w.name, w.sector, c, r, d, m])?;
            insert_search(tx, rowid, &w.name, also_named)?;
        }
        Indexed::Visit(v, due) => {
            let (workplace, visitor) =
                (id_number(tx, v.workplace_id)?, id_number(tx, v.visitor_id)?);
            tx.prepare_cached(
                "INSERT INTO visit_index (record, kind, workplace, visitor, started_ms, status,
                                          country, region, district, community, fl_mask, violation,
                                          offset_ms, under_15)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?
            .execute(params![
                rowid,
                v.kind as i64,
                workplace,
                visitor,
                v.started_at.timestamp_millis(),
                v.status as i64,
                c,
                r,
                d,
                m,
                forced_labour_mask(v),
                has_violation(v),
                i64::from(v.started_at.offset().local_minus_utc()) * 1000,
                crate::domain::derived::children_under_15(v),
            ])?;
            for child in &v.children_identified {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO visit_named (record, child) VALUES (?1, ?2)",
                )?
                .execute(params![rowid, child.as_bytes().as_slice()])?;
            }
            if let Some(own) = visit_severity(v, false) {
                // The alert a case opened on the visit raises it to, kept beside what the
                // visit raises alone, for the cases that come and go after it.
                let raised = visit_severity(v, true).filter(|raised| *raised != own);
                insert_alert(
                    tx,
                    rowid,
                    RecordKind::Visit,
                    own,
                    v.started_at.timestamp_millis(),
                    None,
                    numbers,
                )?;
                if let Some(raised) = raised {
                    tx.prepare_cached(
                        "UPDATE alert_index SET without_cases = ?2, with_cases = ?3
                         WHERE record = ?1",
                    )?
                    .execute(params![rowid, own as i64, raised as i64])?;
                    refresh_visit_alert(tx, v.id.as_bytes())?;
                }
            }
            if let Some(due) = due {
                let due = (RecordKind::Visit, due, None);
                insert_due(tx, rowid, due, v.visitor_id, numbers)?;
            }
        }
        Indexed::ChildCase(k, adult_on, alert) => {
            let workplace = k.workplace_id.map(|w| id_number(tx, w)).transpose()?;
            let visit = k
                .identified_on_visit
                .map(|v| id_number(tx, v))
                .transpose()?;
            let merged_into = k.kept_as().map(|into| id_number(tx, into)).transpose()?;
            tx.prepare_cached(
                "INSERT INTO child_index (record, case_code, name, sex, age, status, classification,
                                          identified_ms, country, region, district, community,
                                          birth_year, name_key, workplace, merged, visit, reached,
                                          merged_into)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
                         ?19)",
            )?
            .execute(params![
                    rowid,
                    k.case_code,
                    k.name,
                    k.sex as i64,
                    k.age_on(k.identified_on),
                    k.status as i64,
                    k.classification.as_ref().map(|c| c.outcome as i64),
                    midnight_ms(k.identified_on),
                    c,
                    r,
                    d,
                    m,
                    birth_year(k),
                    fold_name(&k.name),
                    workplace,
                    k.is_merged_duplicate(),
                    visit,
                    crate::domain::derived::stage_reached(k) as i64,
                    merged_into
                ])?;
            if let Some((severity, day)) = alert {
                insert_alert(
                    tx,
                    rowid,
                    RecordKind::ChildCase,
                    severity,
                    midnight_ms(day),
                    adult_on,
                    numbers,
                )?;
            }
            if let Some(due) = k.next_follow_up_due() {
                let due = (RecordKind::ChildCase, due, adult_on);
                insert_due(tx, rowid, due, k.identified_by, numbers)?;
            }
            insert_search(tx, rowid, &k.name, also_named)?;
            if let Some(visit) = k.identified_on_visit {
                refresh_visit_alert(tx, visit.as_bytes())?;
            }
        }
        Indexed::User(_) | Indexed::Reference => {}
    }
    Ok(())
}

/// A name as it is shown, and the words it is found by (`derived::search_terms`), its other
/// names' too.
fn insert_search(tx: &Transaction, rowid: i64, name: &str, also_named: &[String]) -> Result<()> {
    let mut terms = search_terms(name);
    for other in also_named.iter().filter(|other| other.as_str() != name) {
        terms.push(' ');
        terms.push_str(&search_terms(other));
    }
    tx.prepare_cached("INSERT INTO name_search (rowid, name, terms) VALUES (?1, ?2, ?3)")?
        .execute(params![rowid, name, terms])?;
    Ok(())
}

/// An alert row; `adult_on`, the day a case's child turns 18, ends it without a write.
fn insert_alert(
    tx: &Transaction,
    rowid: i64,
    kind: RecordKind,
    severity: AlertSeverity,
    at_ms: i64,
    adult_on: Option<NaiveDate>,
    [c, r, d, m]: [i64; 4],
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO alert_index (record, kind, severity, at_ms, adult_ms, country, region, district, community)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        rowid,
        kind as i64,
        severity as i64,
        at_ms,
        adult_on.map(midnight_ms),
        c,
        r,
        d,
        m
    ])?;
    Ok(())
}

/// A due row; `adult_on`, the day a case's child turns 18, takes it out of the lists without
/// a write (as it ends an alert).
fn insert_due(
    tx: &Transaction,
    rowid: i64,
    (kind, due, adult_on): (RecordKind, NaiveDate, Option<NaiveDate>),
    assignee: Uuid,
    [c, r, d, m]: [i64; 4],
) -> Result<()> {
    let assignee = id_number(tx, assignee)?;
    tx.prepare_cached(
        "INSERT INTO due_index (record, kind, due_ms, assignee, country, region, district, community, adult_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        rowid,
        kind as i64,
        midnight_ms(due),
        assignee,
        c,
        r,
        d,
        m,
        adult_on.map(midnight_ms)
    ])?;
    Ok(())
}

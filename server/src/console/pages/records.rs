//! The records of a supervisor's areas: overview, review queue, alerts, cases and a case's
//! page, visits, the map and exports. Every read goes through `Store::scoped` with the
//! supervisor's principal; every change through `sync::change_as` on the hub's storage.

use super::{Confirmation, Nav};
use crate::console::charts::{self, Group, Point};
use crate::console::i18n::Tr;
use crate::console::labels;
use crate::console::{
    Access, Ctx, ERASE_REASONS, PageResult, Posted, Problem, Viewer, audit, erase_journaled, html,
    posted, run, user_names, viewer_with,
};
use crate::http::Hub;
use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{Months, NaiveDate};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use uuid::Uuid;
use vigie_core::indicators::SharedChildCounts;
use vigie_core::sync::{EARLIEST_EVENT_DAY, Principal, change_as};
use vigie_core::workflow::{self, Review};
use vigie_core::{
    AlertSeverity, CaseStatus, Cell, ChildCase, ChildCaseQuery, ClassificationOutcome, Error,
    ExportFormat, ExportOptions, FollowUp, FollowUpSituation, IndicatorFilter, Page, Record,
    RecordKind, Referral, Role, ServiceKind, Store, Version, Visit, Workplace,
};

pub fn routes() -> Router<Arc<Hub>> {
    Router::new()
        .route("/console/", get(overview))
        .route("/console/review", get(review_queue))
        .route("/console/visits/{id}", get(visit_page).post(review_visit))
        .route("/console/alerts", get(alerts))
        .route("/console/cases", get(cases).post(cases_searched))
        .route("/console/cases/{id}", get(case_page))
        .route("/console/cases/{id}/status", post(case_status))
        .route("/console/cases/{id}/referral", post(case_referral))
        .route("/console/cases/{id}/follow-up", post(case_follow_up))
        .route("/console/cases/{id}/merge", post(case_merge))
        .route("/console/cases/{id}/resolve", post(case_resolve))
        .route("/console/cases/{id}/erase", post(case_erase))
        .route("/console/cases/{id}/file.json", get(case_file))
        .route("/console/workplaces/{id}", get(workplace_page))
        .route("/console/workplaces/{id}/resolve", post(workplace_resolve))
        .route("/console/visits/{id}/resolve", post(visit_resolve))
        .route(
            "/console/records/{record}/attachments/{id}",
            get(attachment_file),
        )
        .route("/console/map", get(map))
        .route("/console/exports", get(exports))
        .route("/console/exports/download", get(export_download))
}

/// A stored code (`snake_case`) of a serde enum.
fn code(value: impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Today by the hub's clock in its time zone (the country's, as its operator sets it): the
/// day the core's alerts and due lists are judged against (`queries::today_ms`).
fn today() -> NaiveDate {
    chrono::Local::now().date_naive()
}

fn parse_date(text: Option<&str>) -> Option<NaiveDate> {
    text.filter(|t| !t.is_empty())
        .and_then(|t| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok())
}

/// The day of an event typed in a form, or what is wrong with it: not a day of the calendar, or
/// one that has not come yet (as a phone refuses its user's, and the status form its own: the
/// room the hub's rules leave a phone's clock and time zone is not a supervisor's to use, and a
/// follow-up dated two days ahead counted as done and let a case close on a visit to come).
fn event_day(t: &Tr, typed: &str) -> Result<NaiveDate, String> {
    let day = parse_date(Some(typed.trim())).ok_or_else(|| t.get("case.date_invalid"))?;
    if day > today() {
        return Err(t.fmt("case.date_ahead", t.day(day)));
    }
    if day < EARLIEST_EVENT_DAY {
        return Err(t.fmt("case.date_too_early", t.day(day)));
    }
    Ok(day)
}

/// The view, the supervisor and their principal, for a page of records.
fn records<'h>(
    hub: &'h Hub,
    ctx: &Ctx,
) -> Result<(Viewer, Principal, crate::console::view::ViewGuard<'h>), Problem> {
    let viewer = viewer_with(hub, ctx, Access::Supervisor)?;
    let principal = viewer.principal();
    let view = hub.console.views.current(hub.backend.as_ref())?;
    Ok((viewer, principal, view))
}

// ---------------------------------------------------------------------------------------------
// Overview

#[derive(Deserialize, Default)]
pub struct OverviewQuery {
    from: Option<String>,
    until: Option<String>,
    shared: Option<String>,
}

pub struct Kpi {
    label: &'static str,
    value: String,
}

pub struct Row {
    label: String,
    cells: Vec<String>,
}

pub struct Breakdown {
    title: &'static str,
    chart: String,
    rows: Vec<Row>,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    t: Tr,
    nav: Option<Nav>,
    from: String,
    until: String,
    shared: bool,
    error: Option<&'static str>,
    children: Vec<Kpi>,
    visits: Vec<Kpi>,
    columns: Vec<&'static str>,
    breakdowns: Vec<Breakdown>,
    forced_labour: Vec<Row>,
}

pub async fn overview(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Query(q): Query<OverviewQuery>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        // The console's home is the overview for a supervisor, the users for an administrator
        // (where signing in lands them).
        if crate::console::viewer(hub, ctx)?.access == Access::Administrator {
            return Ok(Redirect::to("/console/users").into_response());
        }
        let (viewer, who, view) = records(hub, ctx)?;
        let t = ctx.tr();
        let from = parse_date(q.from.as_deref());
        let until = parse_date(q.until.as_deref());
        let bad = (q.from.as_deref().is_some_and(|f| !f.is_empty()) && from.is_none())
            || (q.until.as_deref().is_some_and(|u| !u.is_empty()) && until.is_none())
            || matches!((from, until), (Some(f), Some(u)) if f >= u);
        let filter = if bad {
            IndicatorFilter::default()
        } else {
            IndicatorFilter {
                area: None,
                from,
                until,
            }
        };
        let found = view.scoped(&who).indicators(&filter)?;
        let reference = hub.backend.reference()?;
        let shared = q.shared.as_deref() == Some("1");
        // One rendering for both: a shared report's cells are withheld as a whole table
        // (`shared_cells`: none can be worked out from a total and the others), never count
        // by count.
        let cells = if shared {
            found.shared_cells()
        } else {
            found.exact_cells()
        };
        let show = |cell: &Cell| t.cell(cell);
        let c = &cells.children;
        let kpi = |label: &'static str, cell: &Cell| Kpi {
            label: t.get(label),
            value: show(cell),
        };
        let children = vec![
            kpi("ind.identified", &c.identified),
            kpi("ind.in_child_labour", &c.in_child_labour),
            kpi("ind.in_hazardous_work", &c.in_hazardous_work),
            kpi("ind.worst_form_suspected", &c.worst_form_suspected),
            kpi("ind.referred", &c.referred),
            kpi("ind.receiving_services", &c.receiving_services),
            kpi("ind.withdrawn", &c.withdrawn_or_prevented),
        ];
        let visits = vec![
            kpi("ind.inspections", &cells.inspections),
            kpi("ind.visits", &cells.visits),
            kpi(
                "ind.workplaces_with_violations",
                &cells.workplaces_with_violations,
            ),
            kpi(
                "ind.visits_with_fl",
                &cells.visits_with_forced_labour_indicators,
            ),
        ];
        let columns = vec![
            t.get("ind.identified"),
            t.get("ind.in_child_labour"),
            t.get("ind.in_hazardous_work"),
            t.get("ind.referred"),
            t.get("ind.receiving_services"),
            t.get("ind.withdrawn"),
        ];
        let series = [
            t.get("ind.identified"),
            t.get("ind.in_child_labour"),
            t.get("ind.in_hazardous_work"),
        ];
        let breakdown = |title: &'static str,
                         map: &BTreeMap<String, SharedChildCounts>,
                         order: Order,
                         label: &dyn Fn(&str) -> String| {
            let sorted = in_order(map, order, label);
            let groups: Vec<Group> = sorted
                .iter()
                .map(|(label, v)| Group {
                    label: label.clone(),
                    values: vec![v.identified, v.in_child_labour, v.in_hazardous_work],
                })
                .collect();
            Breakdown {
                title,
                chart: charts::bars(title, &series, &groups, &|n| t.count(n), t.colon()),
                rows: sorted
                    .into_iter()
                    .map(|(label, v)| Row {
                        label,
                        cells: [
                            &v.identified,
                            &v.in_child_labour,
                            &v.in_hazardous_work,
                            &v.referred,
                            &v.receiving_services,
                            &v.withdrawn_or_prevented,
                        ]
                        .into_iter()
                        .map(show)
                        .collect(),
                    })
                    .collect(),
            }
        };
        let breakdowns = vec![
            breakdown(t.get("ind.by_month"), &cells.by_month, Order::Code, &|k| {
                t.month(k)
            }),
            breakdown(t.get("ind.by_sex"), &cells.by_sex, Order::Label, &|k| {
                t.code("sex", k)
            }),
            breakdown(
                t.get("ind.by_age_band"),
                &cells.by_age_band,
                Order::AgeBands,
                &|k| t.code("age", k),
            ),
            breakdown(
                t.get("ind.by_sector"),
                &cells.by_sector,
                Order::Label,
                &|k| t.sector(&reference, k, None),
            ),
            breakdown(
                t.get("ind.by_district"),
                &cells.by_district,
                Order::Label,
                &|k| t.area(&reference, k),
            ),
            breakdown(
                t.get("ind.by_community"),
                &cells.by_community,
                Order::Label,
                &|k| t.area(&reference, k),
            ),
        ];
        let forced_labour = in_order(&cells.forced_labour_indicators, Order::Label, &|k| {
            t.code("fl", k)
        })
        .into_iter()
        .map(|(label, cell)| Row {
            label,
            cells: vec![show(cell)],
        })
        .collect();
        let page = OverviewPage {
            t,
            nav: Nav::of(&viewer, "overview"),
            // As parsed, not as sent: nothing the request chose is written back (a date
            // field shows no unreadable date anyway).
            from: from.map(|d| d.to_string()).unwrap_or_default(),
            until: until.map(|d| d.to_string()).unwrap_or_default(),
            shared,
            error: bad.then(|| t.get("overview.bad_period")),
            children,
            visits,
            columns,
            breakdowns,
            forced_labour,
        };
        let status = if bad {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::OK
        };
        Ok((status, html(&page)).into_response())
    })
    .await
}

/// How an overview table's rows follow one another.
#[derive(Clone, Copy)]
enum Order {
    /// By code: months, in time.
    Code,
    /// Youngest first, the unknown age last.
    AgeBands,
    /// By label, alphabetically in the page's language (accents and case aside): sectors,
    /// indicators, sexes, districts, communities. Their codes are English words.
    Label,
}

/// A breakdown's entries labelled and in `order`.
fn in_order<'m, V>(
    map: &'m BTreeMap<String, V>,
    order: Order,
    label: &dyn Fn(&str) -> String,
) -> Vec<(String, &'m V)> {
    let mut rows: Vec<(usize, String, String, &V)> = map
        .iter()
        .map(|(code, v)| {
            let rank = match order {
                Order::AgeBands => AGE_BANDS
                    .iter()
                    .position(|b| b == code)
                    .unwrap_or(AGE_BANDS.len()),
                _ => 0,
            };
            let shown = label(code);
            let key = match order {
                Order::Label => vigie_core::fold_name(&shown),
                Order::Code | Order::AgeBands => code.clone(),
            };
            (rank, key, shown, v)
        })
        .collect();
    rows.sort_by(|a, b| (a.0, &a.1, &a.2).cmp(&(b.0, &b.1, &b.2)));
    rows.into_iter()
        .map(|(_, _, shown, v)| (shown, v))
        .collect()
}

/// The indicators' age bands, youngest first (codes as the core writes them).
const AGE_BANDS: [&str; 4] = ["under_12", "12_14", "15_17", "unknown"];

// ---------------------------------------------------------------------------------------------
// Review

#[derive(Deserialize, Default)]
pub struct PageQuery {
    page: Option<u32>,
    done: Option<String>,
}

const PAGE: i32 = 50;

/// The last page number a list takes: its rows' offset, the row after them and the next page's
/// number stay within what a query and a link count (a larger number asked is this page,
/// empty as any page past a list's end).
const LAST_PAGE: u32 = (i32::MAX / PAGE - 2) as u32;

/// The page number asked, bounded (`LAST_PAGE`); the first when none.
fn page_number(asked: Option<u32>) -> u32 {
    asked.unwrap_or(0).min(LAST_PAGE)
}

/// How many rows a list holds, as its page says it above the rows: "Total : 12" when they all
/// fit on the first page, else which rows the page shows out of how many ("51–100 sur 312").
/// `shown` rows are on page `page_no`, `more` when a next page follows; `count` counts the
/// list's rows (its scoped count), read only when the page does not hold the list's end.
fn list_total(
    t: Tr,
    page_no: u32,
    shown: usize,
    more: bool,
    count: impl FnOnce() -> Result<u64, Error>,
) -> Result<String, Error> {
    let first = (page_no as usize).saturating_mul(PAGE as usize);
    if page_no == 0 && !more {
        return Ok(t.fmt("list.all", t.count(shown)));
    }
    if shown == 0 {
        return Ok(String::new());
    }
    let total = match more {
        true => usize::try_from(count()?).unwrap_or(usize::MAX),
        false => first + shown,
    };
    let range = match first {
        0 => t.count(shown),
        _ => format!("{}–{}", t.count(first + 1), t.count(first + shown)),
    };
    Ok(t.fmt("list.range", range)
        .replacen("{}", &t.count(total), 1))
}

/// The `page_no`th page of a list (`page_number`), with one row more than shown (whether there
/// is a next page).
fn list_page(page_no: u32) -> Page {
    let page_no = i32::try_from(page_no.min(LAST_PAGE)).unwrap_or(i32::MAX);
    Page {
        offset: page_no.saturating_mul(PAGE),
        limit: PAGE + 1,
    }
}

pub struct VisitLine {
    id: Uuid,
    started: String,
    kind: String,
    visitor: String,
    /// Where it was made (the review queue's lists span communities).
    community: String,
    /// Its review status (a workplace's list holds visits of every status).
    status: String,
    urgent: bool,
    violation: bool,
    /// The visit's alert as the alerts page words and colours it.
    alert: Option<(&'static str, &'static str)>,
    /// Children under 15 it counted at work whom no case registers, as said (empty if none).
    without_case: String,
}

/// What a visit's line says of the children under 15 it counted at work beyond the cases it
/// opened (`derived::children_without_case`): nothing if none.
fn without_case_label(t: Tr, n: u32) -> String {
    match n {
        0 => String::new(),
        n => t.plural("visit.without_case", n as usize),
    }
}

#[derive(Template)]
#[template(path = "review.html")]
struct ReviewPage {
    t: Tr,
    nav: Option<Nav>,
    csrf: String,
    lines: Vec<VisitLine>,
    /// How many visits wait (`list_total`).
    total: String,
    page: u32,
    more: bool,
    done: Option<&'static str>,
    /// The re-inspections planned at visits, due within 30 days or late (the first page's).
    reinspections: Vec<ReinspectionLine>,
    reinspections_total: String,
}

/// A re-inspection planned at a visit (`Visit::follow_up_due`), until an inspection or a
/// follow-up visit of its workplace answers it (`queries::due_filter`).
struct ReinspectionLine {
    visit: Uuid,
    due: String,
    late: bool,
    /// The workplace, when the supervisor's areas hold it: its page and name.
    workplace: Option<(Uuid, String)>,
    visitor: String,
    community: String,
}

/// The re-inspections the supervisor's areas have due within 30 days or late, the oldest
/// first, with how many there are.
fn reinspections_due(
    t: Tr,
    scoped: &vigie_core::store::Scoped<'_>,
    names: &HashMap<Uuid, String>,
    reference: &vigie_core::ReferenceData,
) -> Result<(Vec<ReinspectionLine>, String), Error> {
    let before = today() + chrono::Days::new(30);
    let due = scoped.follow_ups_due(None, before, Some(RecordKind::Visit), list_page(0))?;
    let more = due.len() > PAGE as usize;
    let total = list_total(t, 0, due.len().min(PAGE as usize), more, || {
        scoped.follow_ups_due_count(None, before, Some(RecordKind::Visit))
    })?;
    let shown: Vec<_> = due.into_iter().take(PAGE as usize).collect();
    let visits: Vec<Uuid> = shown.iter().map(|item| item.id).collect();
    let mut workplaces = scoped.workplaces_of_visits(&visits)?;
    let lines = shown
        .into_iter()
        .map(|item| ReinspectionLine {
            visit: item.id,
            due: t.day(item.due),
            late: item.due < today(),
            workplace: workplaces.remove(&item.id),
            // A visit's due row is assigned to its visitor.
            visitor: names.get(&item.assignee).cloned().unwrap_or_default(),
            community: t.area(reference, &item.community),
        })
        .collect();
    Ok((lines, total))
}

fn done_message(t: Tr, done: Option<&str>) -> Option<&'static str> {
    match done? {
        "validated" => Some(t.get("done.validated")),
        "returned" => Some(t.get("done.returned")),
        "status" => Some(t.get("done.status")),
        "referral" => Some(t.get("done.referral")),
        "follow_up" => Some(t.get("done.follow_up")),
        "merged" => Some(t.get("done.merged")),
        "resolved" => Some(t.get("done.resolved")),
        "erased" => Some(t.get("done.erased")),
        "erase_gone" => Some(t.get("done.erase_gone")),
        _ => None,
    }
}

pub async fn review_queue(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Query(q): Query<PageQuery>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let (viewer, who, view) = records(hub, ctx)?;
        let t = ctx.tr();
        let page_no = page_number(q.page);
        let items = view.scoped(&who).review_queue(list_page(page_no))?;
        let names = user_names(&hub.backend.users()?);
        let reference = hub.backend.reference()?;
        let more = items.len() > PAGE as usize;
        let shown = items.len().min(PAGE as usize);
        let total = list_total(t, page_no, shown, more, || view.scoped(&who).review_count())?;
        let lines = items
            .into_iter()
            .take(PAGE as usize)
            .map(|item| VisitLine {
                id: item.visit.id,
                started: t.day(item.visit.started_on),
                kind: t.code("visit_kind", &code(item.visit.kind)),
                visitor: names
                    .get(&item.visit.visitor_id)
                    .cloned()
                    .unwrap_or_default(),
                community: t.area(&reference, &item.visit.community),
                status: String::new(),
                urgent: item.forced_labour,
                violation: item.violation,
                alert: item
                    .severity
                    .map(|s| severity_label(t, s, RecordKind::Visit)),
                without_case: without_case_label(t, item.children_without_case),
            })
            .collect();
        let (reinspections, reinspections_total) = match page_no {
            0 => reinspections_due(t, &view.scoped(&who), &names, &reference)?,
            _ => (Vec::new(), String::new()),
        };
        let page = ReviewPage {
            t,
            nav: Nav::of(&viewer, "review"),
            csrf: viewer.csrf.clone(),
            lines,
            total,
            page: page_no,
            more,
            done: done_message(t, q.done.as_deref()),
            reinspections,
            reinspections_total,
        };
        Ok(html(&page))
    })
    .await
}

pub struct Field {
    label: &'static str,
    value: String,
}

pub struct HistoryLine {
    /// When the device says the change was made (its clock, which its user may set).
    when: String,
    /// When the hub stored it (its own clock); empty for a change it has no record of.
    received: String,
    /// The device's time is later than the hub's receipt: its clock was ahead.
    ahead: bool,
    who: String,
    fields: String,
}

pub struct ConflictLine {
    /// The field's path, for the form that settles it.
    field: String,
    /// How the record's page names it.
    label: String,
    /// Each concurrent value: as shown, as JSON for the form that keeps it, and whether the
    /// signed-in user may keep it (else no form is offered: another settles it).
    values: Vec<(String, String, bool)>,
}

/// Whether `who` may keep `value` for `field` of the record `current`: the rights the hub
/// applies to a write, on the record as keeping it would make it. The hub judges the write
/// all the same; this only spares the page a button that could only be refused.
fn may_keep<R: Record>(
    who: &Principal,
    current: &R,
    field: &str,
    value: &serde_json::Value,
) -> bool {
    let Ok(mut json) = serde_json::to_value(current) else {
        return true;
    };
    match json.pointer_mut(&format!("/{}", field.replace('.', "/"))) {
        Some(slot) => *slot = value.clone(),
        // Not a field of the typed record (one an older app wrote): the hub decides.
        None => return true,
    }
    match serde_json::from_value::<R>(json) {
        Ok(candidate) => vigie_core::rights::check(
            who.role,
            who.user,
            Some(current.subject()),
            candidate.subject(),
        )
        .is_ok(),
        Err(_) => true,
    }
}

/// A record's conflicts as its page shows them, by field label. Each value says who set it,
/// on which device (as the devices' page begins its number) and when to the second, in the
/// order they were entered (the device's clock), the same device's together, so that values
/// of one person's phones, or of one minute, are told apart. A value that is a user's id
/// (an assignee) is shown by the user's name.
fn conflict_lines(
    t: Tr,
    (kind, received): (RecordKind, &HashMap<automerge::ChangeHash, i64>),
    conflicts: Vec<vigie_core::Conflict>,
    case: Option<&ChildCase>,
    name: &dyn Fn(Uuid) -> String,
    may_keep: &dyn Fn(&str, &serde_json::Value) -> bool,
) -> Vec<ConflictLine> {
    let kind = Some(kind);
    let mut lines: Vec<ConflictLine> = conflicts
        .into_iter()
        .map(|c| ConflictLine {
            label: labels::field(t, kind, &c.field, case),
            values: {
                // In the order the hub received them, by its own clock: a phone's clock set
                // ahead put its value last, as if entered most recently. Then by the devices'
                // times, for values the hub has no receipt of.
                let mut values: Vec<_> = c
                    .values
                    .iter()
                    .map(|v| (received_at(received, &v.change), v))
                    .collect();
                values.sort_by_key(|(stored, v)| {
                    (
                        stored.is_none(),
                        *stored,
                        v.time,
                        v.author.map(|a| a.device),
                    )
                });
                values
                    .into_iter()
                    .map(|(stored, v)| {
                        let mut by: Vec<String> = Vec::new();
                        if let Some(a) = v.author {
                            by.push(t.fmt("case.conflict_set_by", name(a.user)));
                            by.push(labels::device(t, a.device));
                        }
                        if let Some(at) = v.time {
                            by.push(t.here_exactly(&at));
                            // As the history marks it.
                            if made_ahead(at, stored) {
                                by.push(t.get("history.ahead").to_string());
                            }
                        }
                        let value = match labels::is_user_field(kind, &c.field) {
                            true => match v.value.as_str().map(Uuid::parse_str) {
                                Some(Ok(user)) => name(user),
                                _ => labels::value(t, kind, &c.field, &v.value),
                            },
                            false => labels::value(t, kind, &c.field, &v.value),
                        };
                        (
                            format!("{value} — {}", by.join(", ")),
                            v.value.to_string(),
                            may_keep(&c.field, &v.value),
                        )
                    })
                    .collect()
            },
            field: c.field,
        })
        .collect();
    lines.sort_by(|a, b| a.label.cmp(&b.label));
    lines
}

#[derive(Template)]
#[template(path = "visit.html")]
struct VisitPage {
    t: Tr,
    nav: Option<Nav>,
    csrf: String,
    id: Uuid,
    /// The version the page shows (`ReviewForm::version`).
    version: String,
    fields: Vec<Field>,
    findings: String,
    submitted: bool,
    /// A validated visit, which may still be returned (found wrong).
    validated: bool,
    comment: String,
    error: Option<String>,
    conflicts: Vec<ConflictLine>,
    resolve_url: String,
    conflict_error: Option<String>,
    history: History,
    attachments: Vec<AttachmentLine>,
    /// The workplace visited (its page, its name), when the supervisor's areas hold it.
    workplace: Option<(Uuid, String)>,
    /// The people the visitor counted at work (`workforce_lines`).
    workforce: Vec<(&'static str, [String; 4])>,
    done: Option<&'static str>,
}

/// A visit's forced-labour indicators, one a line, each with what the visitor noted of it.
fn forced_labour_lines(t: Tr, visit: &Visit) -> String {
    // Those answered on the forced-labour checklist too, which carry no note.
    vigie_core::domain::derived::indicators_found(visit)
        .into_iter()
        .map(|indicator| {
            let label = t.code("fl", indicator.as_str());
            let note = visit
                .forced_labour
                .get(&indicator)
                .map_or("", String::as_str);
            match note.trim() {
                "" => label,
                note => t.fmt("labels.part", label).replacen("{}", note, 1),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The workforce a visit counted, by sex, each in the age bands (under 12, 12-14, 15-17,
/// adults).
fn workforce_lines(t: Tr, workforce: &vigie_core::Workforce) -> Vec<(&'static str, [String; 4])> {
    let bands = |b: &vigie_core::AgeBands| {
        [b.under_12, b.age_12_14, b.age_15_17, b.adults].map(|n| t.count(n))
    };
    vec![
        (t.get("visit.workforce_female"), bands(&workforce.female)),
        (t.get("visit.workforce_male"), bands(&workforce.male)),
    ]
}

/// A record's history as its page shows it: the latest changes, newest first, and how many
/// earlier ones are not shown (a page of thousands of rows took seconds to make).
pub struct History {
    lines: Vec<HistoryLine>,
    earlier: usize,
}

/// Changes a record's page shows of its history.
const HISTORY_SHOWN: usize = 200;

/// A record's history, newest first, its fields named as its page names them (`labels`);
/// `case` is the record when it is a case (its follow-ups' and referrals' dates).
fn history_lines(
    t: Tr,
    hub: &Hub,
    store: &Store,
    who: &Principal,
    (kind, id): (RecordKind, Uuid),
    case: Option<&ChildCase>,
    names: &HashMap<Uuid, String>,
) -> Result<History, Error> {
    let (recent, earlier) = store.scoped(who).recent_history(id, HISTORY_SHOWN)?;
    let received = hub.backend.received_times(id)?;
    let lines = recent
        .into_iter()
        .rev()
        .map(|h| {
            let stored = received_at(&received, &h.change);
            HistoryLine {
                ahead: h.time.is_some_and(|made| made_ahead(made, stored)),
                received: stored.map(|at| t.here(&at)).unwrap_or_default(),
                when: h.time.map(|at| t.here(&at)).unwrap_or_default(),
                // The person, and the device the change was made on (a lost phone's edits are
                // told from its user's others).
                who: h
                    .author
                    .map(|a| {
                        let person = names
                            .get(&a.user)
                            .cloned()
                            .unwrap_or_else(|| a.user.to_string());
                        format!("{person} · {}", labels::device(t, a.device))
                    })
                    .unwrap_or_default(),
                fields: labels::fields(t, Some(kind), h.fields.iter().map(String::as_str), case),
            }
        })
        .collect();
    Ok(History { lines, earlier })
}

/// How far a device's time may pass the hub's receipt before it is shown as a clock ahead (the
/// two clocks differ by seconds, and a change is made before it is sent).
const CLOCK_AHEAD: chrono::Duration = chrono::Duration::minutes(10);

/// Whether a change's time, `made` by its device's clock, is later than the hub's receipt of
/// it (`stored`): that clock was ahead.
fn made_ahead(
    made: chrono::DateTime<chrono::Utc>,
    stored: Option<chrono::DateTime<chrono::Utc>>,
) -> bool {
    stored.is_some_and(|stored| made > stored + CLOCK_AHEAD)
}

/// When the hub stored the change whose hash is `change` (`Backend::received_times`).
fn received_at(
    received: &HashMap<automerge::ChangeHash, i64>,
    change: &str,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let hash = change.parse::<automerge::ChangeHash>().ok()?;
    chrono::DateTime::from_timestamp_millis(*received.get(&hash)?)
}

/// One attachment of a record, as its page lists it.
pub struct AttachmentLine {
    kind: String,
    caption: String,
    size: String,
    captured: String,
    /// Where the console serves its file (`attachment_file`).
    url: String,
    shown: Shown,
}

/// How a record's page shows an attachment's file: a photo as a picture, a voice note as a
/// player, anything else (a PDF) as a link that downloads it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    Picture,
    Player,
    Download,
}

impl Shown {
    fn of(media_type: &str) -> Shown {
        if media_type.starts_with("image/") {
            Shown::Picture
        } else if media_type.starts_with("audio/") {
            Shown::Player
        } else {
            Shown::Download
        }
    }
}

/// A record's attachments (its manifest: photos, documents, voice notes), in capture order.
/// `record` is the record as the viewer's scope read it (`Scoped::get`): only its manifest is
/// read here.
fn attachment_lines<R: vigie_core::Record>(
    t: Tr,
    store: &Store,
    record: &R,
    names: &HashMap<Uuid, String>,
) -> Result<Vec<AttachmentLine>, Error> {
    Ok(store
        .attachments(record.id())?
        .into_iter()
        .map(|info| {
            let a = info.attachment;
            let by = names.get(&a.captured_by).cloned().unwrap_or_default();
            AttachmentLine {
                kind: t.code("attachment_kind", a.kind.as_str()),
                caption: a.caption,
                size: t.size(a.size),
                captured: format!("{} {by}", t.here(&a.captured_at))
                    .trim_end()
                    .to_string(),
                url: format!("/console/records/{}/attachments/{}", record.id(), a.id),
                shown: Shown::of(&a.media_type),
            }
        })
        .collect())
}

/// An attachment's file, for a supervisor whose areas hold its record. The bytes are read
/// as a device downloads them (`Backend::attachment`: the same scope rule as every pull), so
/// the console can show nothing a supervisor's phone could not fetch. A file is only ever
/// served as what its first bytes show it is (a phone may declare anything), in a sandbox,
/// and every reading is in the audit log.
async fn attachment_file(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Path((record, id)): Path<(Uuid, Uuid)>,
) -> Response {
    // A file is read whole on a console thread: one supervisor's many (a page of photos, a
    // browser's six connections) wait their turn, and leave threads for everyone's pages.
    run_download(hub, ctx, move |hub, ctx| {
        let (viewer, who, view) = records(hub, ctx)?;
        let bytes = attachment_bytes(hub, &who, record, id)?;
        audit(
            hub,
            Some(viewer.user.id),
            "attachment_view",
            Some(record),
            &id.to_string(),
        );
        // The manifest entry as the console's view holds it (which may lag the hub by a sync).
        let entry = view
            .attachments(record)?
            .into_iter()
            .map(|info| info.attachment)
            .find(|a| a.id == id);
        let media_type = entry
            .as_ref()
            .map(|a| a.media_type.as_str())
            .filter(|media_type| vigie_core::domain::attachment::starts_as(media_type, &bytes));
        let (kind, shown) = match media_type {
            Some(media_type) => (media_type.to_string(), Shown::of(media_type)),
            None => ("application/octet-stream".to_string(), Shown::Download),
        };
        let disposition = match shown {
            Shown::Picture | Shown::Player => "inline".to_string(),
            Shown::Download => {
                let ext = match kind.as_str() {
                    "application/pdf" => "pdf",
                    _ => "bin",
                };
                format!("attachment; filename=\"vigie-attachment-{id}.{ext}\"")
            }
        };
        Ok((
            [
                (header::CONTENT_TYPE, kind),
                (header::CONTENT_DISPOSITION, disposition),
                // Whatever the file holds, it runs nothing and loads nothing in the console's
                // origin.
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; sandbox".to_string(),
                ),
            ],
            bytes,
        )
            .into_response())
    })
    .await
}

/// The registrations merged into `case`, and into those before (A merged into B, then B into
/// C: the child's file of C holds A), that the supervisor may read (one of another district,
/// merged by a supervisor above both, stays out of sight with its files). As an erasure takes
/// them: a registration named in `merged_from` is one only if its own `merged_into` names the
/// case back (an altered app's edit could name another child's case there, which would then go
/// into this child's access-request file), and the walk stops where an erasure would.
fn merged_in_view(scoped: &vigie_core::store::Scoped<'_>, case: &ChildCase) -> Vec<ChildCase> {
    let mut seen = std::collections::BTreeSet::from([case.id]);
    let mut next: Vec<(Uuid, Uuid)> = case.merged_from.iter().map(|&d| (d, case.id)).collect();
    let mut merged = Vec::new();
    while let Some((duplicate, kept)) = next.pop() {
        if merged.len() >= MAX_MERGED_SHOWN || !seen.insert(duplicate) {
            continue;
        }
        if let Ok(registration) = scoped.get::<ChildCase>(duplicate)
            && registration.merged_into == Some(kept)
        {
            next.extend(registration.merged_from.iter().map(|&d| (d, duplicate)));
            merged.push(registration);
        }
    }
    merged.sort_by_key(|registration| registration.id);
    merged
}

/// The registrations of one child a case's page and file show at most: beyond the erasure's
/// own bound, reached only by edits made to walk the hub.
const MAX_MERGED_SHOWN: usize = 1_000;

/// Everything the hub holds of one child, for an access request (a parent asks what is held
/// of their child): the case as its values are now, with its referrals and follow-ups, the
/// registrations merged into it, the files attached (their manifest: each file opens from the
/// page) and its history (who changed which field, on which device, when). One JSON file,
/// journaled as the case's page is; the supervisor's areas only, as every page.
async fn case_file(State(hub): State<Arc<Hub>>, ctx: Ctx, Path(id): Path<Uuid>) -> Response {
    run_download(hub, ctx, move |hub, ctx| {
        let (viewer, who, view) = records(hub, ctx)?;
        let scoped = view.scoped(&who);
        let case: ChildCase = scoped.get(id)?;
        let merged = merged_in_view(&scoped, &case);
        // The files of the case and of the registrations the supervisor may read (a duplicate
        // of another district merged into it keeps its files there).
        let attachments: Vec<_> = std::iter::once(id)
            .chain(merged.iter().map(|duplicate| duplicate.id))
            .filter_map(|record| view.attachments(record).ok())
            .flatten()
            .map(|info| info.attachment)
            .collect();
        let received = hub.backend.received_times(id)?;
        let history: Vec<serde_json::Value> = scoped
            .history(id)?
            .into_iter()
            .map(|h| {
                serde_json::json!({
                    // The device's clock, and the hub's when it stored the change.
                    "time": h.time,
                    "received": received_at(&received, &h.change),
                    "user": h.author.map(|a| a.user),
                    "device": h.author.map(|a| a.device),
                    "fields": h.fields,
                })
            })
            .collect();
        audit(hub, Some(viewer.user.id), "case_file", Some(id), "");
        let file = serde_json::json!({
            "case": case,
            "merged_duplicates": merged,
            "attachments": attachments,
            "history": history,
        });
        // A JSON value always writes (its keys are text).
        let body = serde_json::to_vec_pretty(&file).unwrap_or_default();
        Ok((
            [
                (
                    header::CONTENT_TYPE,
                    "application/json; charset=utf-8".to_string(),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"vigie-case-{id}.json\""),
                ),
            ],
            body,
        )
            .into_response())
    })
    .await
}

/// The whole file of attachment `id` of `record`, read chunk by chunk as `who`'s device would
/// download it; `NotFound` for a record outside the supervisor's areas or an id its manifest
/// does not name, `NotHere` while the hub does not hold the bytes yet.
fn attachment_bytes(
    hub: &Hub,
    who: &Principal,
    record: Uuid,
    id: Uuid,
) -> Result<Vec<u8>, Problem> {
    use vigie_core::sync::{
        AttachmentRequest, AttachmentResponse, HubError, MAX_CHUNK_BYTES, TransferRefusal,
        decode_attachment_response, encode_attachment_request,
    };
    // The request is the console's own, and well formed: only the storage can fail it.
    let failed = |e: HubError| match e {
        HubError::Store(e) => Problem::Storage(e),
        e => Problem::Storage(Error::Io(std::io::Error::other(e.to_string()))),
    };
    let mut bytes = Vec::new();
    loop {
        let request = encode_attachment_request(&AttachmentRequest::Download {
            record,
            id,
            offset: bytes.len() as u64,
            max_bytes: MAX_CHUNK_BYTES as u32,
        });
        let response = hub
            .backend
            .attachment(who, &request, &hub.limits)
            .map_err(failed)?;
        let response = decode_attachment_response(&response, usize::MAX)
            .map_err(|e| failed(HubError::Malformed(e)))?;
        match response {
            AttachmentResponse::Chunk {
                size,
                offset,
                bytes: chunk,
                ..
            } if offset == bytes.len() as u64 => {
                if bytes.is_empty() {
                    bytes.reserve_exact(usize::try_from(size).unwrap_or(0));
                }
                // A chunk that brings nothing before the end would loop for ever.
                if chunk.is_empty() && (bytes.len() as u64) < size {
                    return Err(Problem::NotHere("attachment.not_at_hub"));
                }
                bytes.extend_from_slice(&chunk);
                if bytes.len() as u64 >= size {
                    bytes.truncate(usize::try_from(size).unwrap_or(usize::MAX));
                    return Ok(bytes);
                }
            }
            AttachmentResponse::Refused {
                reason: TransferRefusal::NotYetAvailable,
                ..
            } => return Err(Problem::NotHere("attachment.not_at_hub")),
            _ => return Err(Problem::NotFound),
        }
    }
}

/// What a visit's page shows besides the visit: the review form's error and comment, a
/// conflict's refusal, what was just done.
#[derive(Default)]
struct VisitForm {
    error: Option<String>,
    comment: String,
    conflict_error: Option<String>,
}

fn visit_page_of(
    hub: &Hub,
    ctx: &Ctx,
    id: Uuid,
    VisitForm {
        error,
        comment,
        conflict_error,
    }: VisitForm,
    done: Option<&str>,
) -> PageResult {
    let (viewer, who, view) = records(hub, ctx)?;
    let t = ctx.tr();
    let visit: Visit = view.scoped(&who).get(id)?;
    // A visit's findings and indicators may name the people met, as a case's file does.
    audit(hub, Some(viewer.user.id), "visit_view", Some(id), "");
    let reference = hub.backend.reference()?;
    let names = user_names(&hub.backend.users()?);
    let name = |u: Uuid| names.get(&u).cloned().unwrap_or_else(|| u.to_string());
    let registered = view.scoped(&who).children_identified(&visit)?;
    let mut fields = vec![
        Field {
            label: t.get("visit.kind"),
            value: t.code("visit_kind", &code(visit.kind)),
        },
        Field {
            label: t.get("visit.status"),
            value: t.code("visit_status", visit.status.as_str()),
        },
        Field {
            label: t.get("visit.started"),
            value: t.moment(&visit.started_at),
        },
        Field {
            label: t.get("visit.ended"),
            value: visit.ended_at.map(|at| t.moment(&at)).unwrap_or_default(),
        },
        Field {
            label: t.get("visit.visitor"),
            value: name(visit.visitor_id),
        },
        Field {
            label: t.get("field.area"),
            value: t.area_path(&reference, &visit.area),
        },
        Field {
            label: t.get("visit.checklist_no"),
            // Each item breached (`Visit::breaches`) by its label in the checklist version the
            // visit answered (its code when this hub lacks that version), with the answer given:
            // "Workers keep their identity papers: no" reads as the breach it is, where the
            // label alone reads as the rule kept. One a line: labels may hold commas.
            value: {
                let answered = &visit.checklist;
                let version = u32::try_from(answered.version).unwrap_or(0);
                let checklist = reference.checklist(&answered.checklist, version);
                visit
                    .breaches
                    .iter()
                    .map(|code| {
                        let label = checklist
                            .and_then(|list| list.item(code))
                            .map_or(code.as_str(), |i| i.label(t.lang()));
                        let answer = match answered.answers.get(code) {
                            Some(vigie_core::Answer::Yes) => t.get("labels.yes"),
                            _ => t.get("labels.no"),
                        };
                        t.fmt("labels.part", label).replacen("{}", answer, 1)
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            },
        },
        Field {
            // Each indicator with what the visitor noted of it, on a line of its own (a note
            // is sentences of its own).
            label: t.get("visit.forced_labour"),
            value: forced_labour_lines(t, &visit),
        },
        Field {
            label: t.get("visit.children"),
            value: t.count(registered),
        },
    ];
    // Children under 15 counted at work whom no case opened from the visit registers: said
    // where the supervisor decides on it, before the visit is validated as paperwork.
    let without_case = view.scoped(&who).children_without_case(&visit)?;
    if without_case > 0 {
        fields.push(Field {
            label: t.get("visit.without_case_label"),
            value: t.plural("visit.without_case_said", without_case as usize),
        });
    }
    // What the visitor did about it, and when the workplace is to be seen again.
    fields.push(Field {
        label: t.get("visit.actions"),
        value: visit
            .actions
            .iter()
            .map(|a| t.code("visit_action", a.as_str()))
            .collect::<Vec<_>>()
            .join("; "),
    });
    fields.push(Field {
        label: t.get("visit.follow_up_due"),
        value: visit.follow_up_due.map(|d| t.day(d)).unwrap_or_default(),
    });
    // The checklist answered, by its name in the version answered (its code when this hub
    // lacks that version).
    let answered = &visit.checklist;
    if !answered.checklist.is_empty() {
        let version = u32::try_from(answered.version).unwrap_or(0);
        let name = reference
            .checklist(&answered.checklist, version)
            .and_then(|list| list.name.get(t.lang()))
            .unwrap_or(&answered.checklist)
            .to_string();
        fields.push(Field {
            label: t.get("visit.checklist"),
            value: t.fmt("visit.checklist_version", name).replacen(
                "{}",
                &answered.version.to_string(),
                1,
            ),
        });
    }
    if let Some(r) = visit.reviewed_by {
        // A supervisor's own visit, validated by that supervisor: said, not to be read as
        // reviewed by another.
        let value = match r == visit.visitor_id {
            true => format!("{} — {}", name(r), t.get("visit.reviewed_by_its_visitor")),
            false => name(r),
        };
        fields.push(Field {
            label: t.get("visit.reviewed_by"),
            value,
        });
    }
    if !visit.review_comment.is_empty() {
        fields.push(Field {
            label: t.get("visit.review_comment"),
            value: visit.review_comment.clone(),
        });
    }
    let conflicts = conflict_lines(
        t,
        (RecordKind::Visit, &hub.backend.received_times(id)?),
        view.scoped(&who).conflicts(id)?,
        None,
        &name,
        &|field, value| may_keep(&who, &visit, field, value),
    );
    let history = history_lines(t, hub, &view, &who, (RecordKind::Visit, id), None, &names)?;
    let attachments = attachment_lines(t, &view, &visit, &names)?;
    let workplace = view
        .scoped(&who)
        .get::<Workplace>(visit.workplace_id)
        .ok()
        .map(|w| (w.id, w.name));
    let status = if error.is_some() || conflict_error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let workforce = workforce_lines(t, &visit.workforce);
    let page = VisitPage {
        t,
        nav: Nav::of(&viewer, "review"),
        csrf: viewer.csrf.clone(),
        id,
        workforce,
        version: visit.version.to_string(),
        fields,
        findings: visit.findings.clone(),
        submitted: visit.status == vigie_core::VisitStatus::Submitted,
        validated: visit.status == vigie_core::VisitStatus::Validated,
        comment,
        error,
        conflicts,
        resolve_url: format!("/console/visits/{id}/resolve"),
        conflict_error,
        history,
        attachments,
        workplace,
        done: done_message(t, done),
    };
    Ok((status, html(&page)).into_response())
}

pub async fn visit_page(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    Query(q): Query<DoneQuery>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        visit_page_of(hub, ctx, id, VisitForm::default(), q.done.as_deref())
    })
    .await
}

#[derive(Deserialize)]
pub struct ReviewForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    back: String,
    /// The version of the visit the page showed: a review is of what the supervisor read (a
    /// visit returned and submitted again since, its findings changed, is read again first).
    /// None from a page made before it was a field.
    #[serde(default)]
    version: Option<String>,
}

/// Writes a change to one record as the signed-in supervisor; errors a person can fix come
/// back as theirs (for an inline message, `Tr::refusal`), others as problems.
fn change<R: Record>(
    hub: &Hub,
    who: &Principal,
    id: Uuid,
    edit: &mut dyn FnMut(&mut R) -> Result<(), Error>,
) -> Result<Result<R, Error>, Problem> {
    let (actor, reference) = (hub.backend.actor(), hub.backend.reference()?);
    let mut written = None;
    let outcome = hub.backend.write(&mut |tx| {
        written = Some(change_as(tx, who, &actor, &reference, id, edit)?);
        Ok(())
    });
    match outcome {
        Ok(()) => Ok(Ok(written.expect("written"))),
        Err(e @ (Error::Validation(_) | Error::NotAllowed { .. })) => Ok(Err(e)),
        Err(e) => Err(e.into()),
    }
}

pub async fn review_visit(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    Posted(form): Posted<ReviewForm>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let viewer = posted(hub, ctx, Access::Supervisor, &form.csrf)?;
        let t = ctx.tr();
        let review = match form.action.as_str() {
            "validate" => Review::Validate,
            "return" => Review::Return {
                comment: form.comment.clone(),
            },
            _ => {
                return visit_page_of(
                    hub,
                    ctx,
                    id,
                    VisitForm {
                        error: Some(t.get("review.choose").into()),
                        comment: form.comment.clone(),
                        ..Default::default()
                    },
                    None,
                );
            }
        };
        let who = viewer.principal();
        let done = if matches!(review, Review::Validate) {
            "validated"
        } else {
            "returned"
        };
        let (mut found, mut changed) = (None, false);
        // A comment typed with "Valider" is the validator's, kept on the visit.
        let validation_comment = form.comment.trim().to_string();
        match change::<Visit>(hub, &who, id, &mut |visit| {
            (found, changed) = (Some(visit.status), false);
            // The page offers a review of a submitted visit only: a form sent from a page
            // opened before another supervisor validated it would return the visit validated
            // since, undoing their decision unseen.
            // A validated visit found wrong is returned from its page too, the page it was
            // read on named (its version), never from the queue's one-click validation.
            let returning_validated = visit.status == vigie_core::VisitStatus::Validated
                && matches!(review, Review::Return { .. })
                && form.version.as_deref().is_some_and(|seen| !seen.is_empty());
            if visit.status != vigie_core::VisitStatus::Submitted && !returning_validated {
                return Err(Error::NotAllowed {
                    rule: "only a submitted visit is reviewed from its page".into(),
                });
            }
            if form
                .version
                .as_deref()
                .filter(|seen| !seen.is_empty())
                .is_some_and(|seen| Version::parse(seen).as_ref() != Some(&visit.version))
            {
                changed = true;
                return Err(Error::NotAllowed {
                    rule: "the visit changed since its page was opened".into(),
                });
            }
            // Cloned: a transaction run again (PostgreSQL, a serialization failure) calls this
            // again, and must make the same decision (taken once, a return became a validation).
            let review = review.clone();
            let validated = matches!(review, Review::Validate);
            workflow::apply_review(visit, review, who.user)?;
            if validated {
                visit.review_comment = validation_comment.clone();
            }
            Ok(())
        })? {
            Ok(_) => {
                audit(
                    hub,
                    Some(viewer.user.id),
                    &format!("visit_{done}"),
                    Some(id),
                    "",
                );
                let back = if form.back == "visit" {
                    format!("/console/visits/{id}?done={done}")
                } else {
                    format!("/console/review?done={done}")
                };
                Ok(Redirect::to(&back).into_response())
            }
            Err(refused) => {
                // A return asked from a validated visit's page (its version named).
                let returning = matches!(review, Review::Return { .. })
                    && form.version.as_deref().is_some_and(|seen| !seen.is_empty());
                let message = match (found, &refused) {
                    _ if changed => t.get("review.changed").to_string(),
                    (_, Error::Validation(v))
                        if v.field == "review_comment" && form.comment.trim().is_empty() =>
                    {
                        t.get("review.comment_needed").to_string()
                    }
                    // Reviewed meanwhile (another supervisor, the same form sent twice).
                    (Some(status), _)
                        if status != vigie_core::VisitStatus::Submitted
                            && !(returning && status == vigie_core::VisitStatus::Validated) =>
                    {
                        t.fmt(
                            "review.not_submitted",
                            t.code("visit_status", status.as_str()),
                        )
                    }
                    _ => t.refusal(&refused),
                };
                visit_page_of(
                    hub,
                    ctx,
                    id,
                    VisitForm {
                        error: Some(message),
                        comment: form.comment.clone(),
                        ..Default::default()
                    },
                    None,
                )
            }
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Alerts

pub struct AlertLine {
    href: String,
    /// Which record: a case by its code, a visit as one.
    what: String,
    severity: &'static str,
    class: &'static str,
    when: String,
    district: String,
    community: String,
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    t: Tr,
    nav: Option<Nav>,
    lines: Vec<AlertLine>,
    /// How many alerts stand (`list_total`).
    total: String,
    page: u32,
    more: bool,
}

/// An alert's label: a visit's worst form is forced labour where children work, which the
/// children's figure "worst form suspected" (a child's case) does not count: named apart.
fn severity_label(t: Tr, s: AlertSeverity, kind: RecordKind) -> (&'static str, &'static str) {
    match s {
        AlertSeverity::WorstFormSuspected if kind == RecordKind::Visit => {
            (t.get("alert.worst_form_visit"), "worst")
        }
        AlertSeverity::WorstFormSuspected => (t.get("alert.worst_form"), "worst"),
        AlertSeverity::HazardousChildLabour => (t.get("alert.hazardous"), "hazardous"),
        AlertSeverity::StillWorking => (t.get("alert.still_working"), "hazardous"),
        AlertSeverity::ForcedLabourLikely => (t.get("alert.forced_labour_likely"), "fl"),
        AlertSeverity::ForcedLabourIndicators => (t.get("alert.forced_labour"), "fl"),
    }
}

fn record_href(kind: RecordKind, id: Uuid) -> String {
    match kind {
        RecordKind::Visit => format!("/console/visits/{id}"),
        RecordKind::Workplace => format!("/console/workplaces/{id}"),
        _ => format!("/console/cases/{id}"),
    }
}

pub async fn alerts(State(hub): State<Arc<Hub>>, ctx: Ctx, Query(q): Query<PageQuery>) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let (viewer, who, view) = records(hub, ctx)?;
        let t = ctx.tr();
        let page_no = page_number(q.page);
        let found = view.scoped(&who).alerts(None, list_page(page_no))?;
        let reference = hub.backend.reference()?;
        let more = found.len() > PAGE as usize;
        let total = list_total(t, page_no, found.len().min(PAGE as usize), more, || {
            view.scoped(&who).alert_count(None)
        })?;
        let lines = found
            .into_iter()
            .take(PAGE as usize)
            .map(|a| {
                let (severity, class) = severity_label(t, a.severity, a.kind);
                AlertLine {
                    href: record_href(a.kind, a.id),
                    what: a
                        .case_code
                        .clone()
                        .unwrap_or_else(|| t.code("record_kind", a.kind.as_str())),
                    severity,
                    class,
                    when: t.day(a.at.date_naive()),
                    district: t.area(&reference, &a.district),
                    community: t.area(&reference, &a.community),
                }
            })
            .collect();
        Ok(html(&AlertsPage {
            t,
            nav: Nav::of(&viewer, "alerts"),
            lines,
            total,
            page: page_no,
            more,
        }))
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Cases

#[derive(Deserialize, Default)]
pub struct CasesQuery {
    q: Option<String>,
    status: Option<String>,
    classification: Option<String>,
    list: Option<String>,
    page: Option<u32>,
    done: Option<String>,
}

pub struct CaseLine {
    id: Uuid,
    code: String,
    name: String,
    sex: String,
    age: String,
    status: String,
    classification: String,
    class: &'static str,
    community: String,
    due: String,
    /// A follow-up due before today (the due list holds the late ones too).
    late: bool,
}

#[derive(Template)]
#[template(path = "cases.html")]
struct CasesPage {
    t: Tr,
    nav: Option<Nav>,
    q: String,
    status: String,
    classification: String,
    list: String,
    statuses: Vec<(&'static str, String)>,
    classifications: Vec<(&'static str, String)>,
    lines: Vec<CaseLine>,
    /// How many follow-ups the due or overdue list holds (`list_total`); empty for the others.
    total: String,
    page: u32,
    more: bool,
    next_href: String,
    prev_href: String,
    /// A search sent by the form: its pages are asked for by the form too.
    posted: bool,
    done: Option<&'static str>,
}

const STATUSES: [CaseStatus; 6] = CaseStatus::ALL;

const CLASSIFICATIONS: [ClassificationOutcome; 4] = [
    ClassificationOutcome::WorstFormSuspected,
    ClassificationOutcome::HazardousChildLabour,
    ClassificationOutcome::ChildLabour,
    ClassificationOutcome::NotChildLabour,
];

fn classification_class(outcome: Option<ClassificationOutcome>) -> &'static str {
    match outcome {
        Some(ClassificationOutcome::WorstFormSuspected) => "worst",
        Some(ClassificationOutcome::HazardousChildLabour) => "hazardous",
        _ => "",
    }
}

/// The case search the console's form sends: by POST, so that a child's name typed there
/// stays out of the page's address (the browser's history on a shared office computer, a
/// proxy's access log), as the live search's requests do.
#[derive(Deserialize)]
pub struct CasesForm {
    csrf: String,
    q: Option<String>,
    status: Option<String>,
    classification: Option<String>,
    page: Option<u32>,
}

pub async fn cases_searched(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Posted(form): Posted<CasesForm>,
) -> Response {
    let q = CasesQuery {
        q: form.q,
        status: form.status,
        classification: form.classification,
        list: None,
        page: form.page,
        done: None,
    };
    let csrf = form.csrf;
    run(hub, ctx, move |hub, ctx| {
        cases_page(hub, ctx, &q, Some(&csrf))
    })
    .await
}

pub async fn cases(State(hub): State<Arc<Hub>>, ctx: Ctx, Query(q): Query<CasesQuery>) -> Response {
    run(hub, ctx, move |hub, ctx| cases_page(hub, ctx, &q, None)).await
}

/// The cases page for `q`; `posted` carries the CSRF token of a search sent by the form.
fn cases_page(hub: &Hub, ctx: &Ctx, q: &CasesQuery, posted: Option<&str>) -> PageResult {
    let (viewer, who, view) = records(hub, ctx)?;
    if let Some(csrf) = posted {
        crate::console::check_csrf(&viewer, csrf)?;
    }
    let t = ctx.tr();
    let scoped = view.scoped(&who);
    let page_no = page_number(q.page);
    let page = list_page(page_no);
    // Only the lists there are: the page writes back no text the request brought
    // (`NOT_REFLECTED`), so it may be compressed.
    let list = match q.list.as_deref() {
        Some(known @ ("due" | "overdue")) => known.to_string(),
        _ => String::new(),
    };
    let mut lines: Vec<CaseLine> = Vec::new();
    let reference = hub.backend.reference()?;
    let line = |c: vigie_core::ChildCaseSummary, due: String, late: bool| CaseLine {
        id: c.id,
        code: c.case_code,
        name: c.name,
        sex: t.code("sex", &code(c.sex)),
        age: c.age.map(|a| a.to_string()).unwrap_or_default(),
        status: t.code("status", c.status.as_str()),
        classification: c
            .classification
            .map(|k| t.code("class", k.as_str()))
            .unwrap_or_default(),
        class: classification_class(c.classification),
        community: t.area(&reference, &c.community),
        due,
        late,
    };
    let mut total = String::new();
    if list == "due" || list == "overdue" {
        // The due list: follow-ups within 30 days; the overdue list: before today.
        let before = if list == "due" {
            today() + chrono::Days::new(30)
        } else {
            today()
        };
        // Cases only, in the query itself: a page of rows filtered afterwards would hide
        // the cases behind the visits due (and the next page's link with them).
        for item in scoped.follow_ups_due(None, before, Some(RecordKind::ChildCase), page)? {
            let case: ChildCase = scoped.get(item.id)?;
            let summary = vigie_core::ChildCaseSummary {
                id: case.id,
                case_code: case.case_code.clone(),
                name: case.name.clone(),
                sex: case.sex,
                age: case
                    .age_on(case.identified_on)
                    .and_then(|a| i32::try_from(a).ok()),
                status: case.status,
                classification: case.classification.as_ref().map(|c| c.outcome),
                district: case.area.district.clone(),
                community: case.area.community.clone(),
            };
            lines.push(line(summary, t.day(item.due), item.due < today()));
        }
        let more = lines.len() > PAGE as usize;
        total = list_total(t, page_no, lines.len().min(PAGE as usize), more, || {
            scoped.follow_ups_due_count(None, before, Some(RecordKind::ChildCase))
        })?;
    } else {
        let query = ChildCaseQuery {
            area: None,
            status: STATUSES
                .iter()
                .copied()
                .find(|s| Some(s.as_str()) == q.status.as_deref()),
            classification: CLASSIFICATIONS
                .iter()
                .copied()
                .find(|c| Some(c.as_str()) == q.classification.as_deref()),
            code: None,
        };
        let text = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let found = match text {
            // With a digit, a case's code or its tail ("000004", "C01-000004") as well as
            // a name with a number ("Ligne 1"): the cases of the code first, then those of
            // the name. A word that may be a code (codes are ASCII without spaces, and not
            // every programme numbers them: "CI-SBR-AKAFL") is tried as one too.
            Some(typed) if may_hold_a_code(typed) => {
                cases_by_code_or_name(&scoped, &query, typed, page)?
            }
            name => scoped.child_cases(&query, name, page)?,
        };
        for c in found {
            lines.push(line(c, String::new(), false));
        }
    }
    let more = lines.len() > PAGE as usize;
    lines.truncate(PAGE as usize);
    let base = format!(
        "/console/cases?q={}&status={}&classification={}&list={}",
        crate::console::urlencode(q.q.as_deref().unwrap_or("")),
        crate::console::urlencode(q.status.as_deref().unwrap_or("")),
        crate::console::urlencode(q.classification.as_deref().unwrap_or("")),
        crate::console::urlencode(&list),
    );
    let page = CasesPage {
        t,
        nav: Nav::of(&viewer, "cases"),
        q: q.q.clone().unwrap_or_default(),
        status: q.status.clone().unwrap_or_default(),
        classification: q.classification.clone().unwrap_or_default(),
        list,
        statuses: STATUSES
            .iter()
            .map(|s| (s.as_str(), t.code("status", s.as_str())))
            .collect(),
        classifications: CLASSIFICATIONS
            .iter()
            .map(|c| (c.as_str(), t.code("class", c.as_str())))
            .collect(),
        lines,
        total,
        page: page_no,
        more,
        next_href: format!("{base}&page={}", page_no + 1),
        prev_href: format!("{base}&page={}", page_no.saturating_sub(1)),
        posted: posted.is_some(),
        done: done_message(t, q.done.as_deref()),
    };
    Ok(html(&page))
}

/// The cases of the supervisor's areas that `query` finds (of `name`, if given), that `keep`
/// keeps (those not found already), in the order the name search pages them, up to `wanted`:
/// read a page at a time, the query (a code included) judged by the index.
fn cases_kept(
    scoped: &vigie_core::store::Scoped<'_>,
    query: &ChildCaseQuery,
    name: Option<&str>,
    wanted: usize,
    mut keep: impl FnMut(&vigie_core::ChildCaseSummary) -> bool,
) -> Result<Vec<vigie_core::ChildCaseSummary>, Error> {
    // As many as a page holds: a batch shorter than asked for is the last.
    const BATCH: i32 = Page::MAX_LIMIT;
    let mut found = Vec::new();
    let mut offset = 0;
    while found.len() < wanted {
        let batch = scoped.child_cases(
            query,
            name,
            Page {
                offset,
                limit: BATCH,
            },
        )?;
        let last = batch.len() < BATCH as usize;
        found.extend(batch.into_iter().filter(&mut keep));
        if last {
            break;
        }
        offset = offset.saturating_add(BATCH);
    }
    Ok(found)
}

/// The rows of `page` among every row found from the first.
fn rows_of<T>(found: Vec<T>, page: Page) -> Vec<T> {
    let skip = usize::try_from(page.offset).unwrap_or(usize::MAX);
    found
        .into_iter()
        .skip(skip)
        .take(usize::try_from(page.limit).unwrap_or(0))
        .collect()
}

/// Whether text typed in the search may be (or hold) a case's code: a digit, of any script
/// (`fold_code`: Arabic-Indic, full-width), or one word that folds to ASCII.
fn may_hold_a_code(typed: &str) -> bool {
    holds_a_digit(typed)
        || (!typed.contains(char::is_whitespace) && vigie_core::fold_code(typed).is_ascii())
}

/// Whether a word holds a digit, as codes are written once folded.
fn holds_a_digit(word: &str) -> bool {
    vigie_core::fold_code(word)
        .chars()
        .any(|c| c.is_ascii_digit())
}

/// The page `page` of the cases of a name with a code's last part ("Adjoua 0010": those of
/// that name whose code one of the parts with a digit names), then of those whose code `typed`
/// names (`ChildCaseQuery::code`), then of those whose name it finds: the first rows of each
/// list make the first rows of all.
fn cases_by_code_or_name(
    scoped: &vigie_core::store::Scoped<'_>,
    query: &ChildCaseQuery,
    typed: &str,
    page: Page,
) -> Result<Vec<vigie_core::ChildCaseSummary>, Error> {
    let wanted = usize::try_from(page.offset.saturating_add(page.limit)).unwrap_or(usize::MAX);
    let mut seen = std::collections::HashSet::new();
    let mut found = Vec::new();
    let (codes, words): (Vec<&str>, Vec<&str>) = typed
        .split_whitespace()
        .partition(|part| holds_a_digit(part));
    let with_code = |code: &str| ChildCaseQuery {
        code: Some(code.to_string()),
        ..query.clone()
    };
    if !words.is_empty() {
        let words = words.join(" ");
        for code in &codes {
            let rest = wanted.saturating_sub(found.len());
            found.extend(cases_kept(
                scoped,
                &with_code(code),
                Some(&words),
                rest,
                |c| seen.insert(c.id),
            )?);
        }
    }
    let rest = wanted.saturating_sub(found.len());
    found.extend(cases_kept(scoped, &with_code(typed), None, rest, |c| {
        seen.insert(c.id)
    })?);
    let rest = wanted.saturating_sub(found.len());
    found.extend(cases_kept(scoped, query, Some(typed), rest, |c| {
        seen.insert(c.id)
    })?);
    Ok(rows_of(found, page))
}

pub struct Line2 {
    a: String,
    b: String,
    c: String,
    d: String,
}

pub struct Candidate {
    id: Uuid,
    code: String,
    name: String,
    score: String,
}

#[derive(Template)]
#[template(path = "case.html")]
struct CasePage {
    t: Tr,
    nav: Option<Nav>,
    csrf: String,
    id: Uuid,
    code: String,
    name: String,
    /// The case a merged duplicate went into: its page, and its code and name when the
    /// supervisor's areas hold it (its id else).
    merged_into: Option<(Uuid, String)>,
    /// The pair merged offline in opposite directions (each names the other): the case the
    /// notice names, which a merge made once more settles.
    merged_both_ways: bool,
    /// The case is identified: a referral would make it referred (the page says so).
    identified: bool,
    fields: Vec<Field>,
    /// Where the child was found (its page, its name), when the supervisor's areas hold it.
    workplace: Option<(Uuid, String)>,
    /// The visit that identified the child (its page, its day), likewise.
    visit: Option<(Uuid, String)>,
    notes: String,
    steps: Vec<(&'static str, String)>,
    referrals: Vec<Line2>,
    follow_ups: Vec<Line2>,
    services: Vec<(String, String)>,
    /// The providers the directory in force lists for the case's area, each with its name and
    /// service (none: the directory lists none, the provider is typed).
    providers: Vec<(String, String)>,
    situations: Vec<(String, String)>,
    conflicts: Vec<ConflictLine>,
    resolve_url: String,
    conflict_error: Option<String>,
    history: History,
    attachments: Vec<AttachmentLine>,
    candidates: Vec<Candidate>,
    reasons: Vec<(&'static str, &'static str)>,
    /// The erasure's reason chosen at the first step, kept chosen at the confirmation.
    erase_reason: &'static str,
    error: Option<String>,
    error_form: &'static str,
    confirm_erase: bool,
    done: Option<&'static str>,
    today: String,
    typed: Typed,
    /// The key the referral or follow-up the page's forms send is recorded under: a form sent
    /// twice (a retry, a second tap on a slow link) records it once.
    entry: Uuid,
}

/// A referral's provider by its name in the directory the case was captured with, or the one
/// in force; the code as typed when neither lists it (a directory without providers).
fn provider_name(
    reference: &vigie_core::ReferenceData,
    case: &ChildCase,
    provider: &str,
) -> String {
    let pinned = case
        .captured_with
        .referral_services
        .as_ref()
        .and_then(|pin| reference.referral_directory_at(pin));
    [pinned, reference.referrals_in_force(&case.area.country)]
        .into_iter()
        .flatten()
        .find_map(|d| d.provider(provider))
        .map_or_else(|| provider.to_string(), |p| p.name.clone())
}

/// The providers a referral made now may name (`providers` of `CasePage`).
fn providers_in_force(
    t: &Tr,
    reference: &vigie_core::ReferenceData,
    case: &ChildCase,
) -> Vec<(String, String)> {
    let Some(directory) = reference.referrals_in_force(&case.area.country) else {
        return Vec::new();
    };
    SERVICES
        .iter()
        .flat_map(|s| directory.providers_for(*s, &case.area))
        .map(|p| {
            let service = t.code("service", &code(p.service));
            (p.code.clone(), format!("{} ({service})", p.name))
        })
        .collect()
}

const SERVICES: [ServiceKind; 5] = [
    ServiceKind::Education,
    ServiceKind::Health,
    ServiceKind::SocialProtection,
    ServiceKind::LegalOrPolice,
    ServiceKind::Vocational,
];

const SITUATIONS: [FollowUpSituation; 5] = [
    FollowUpSituation::InSchool,
    FollowUpSituation::Withdrawn,
    FollowUpSituation::AtRisk,
    FollowUpSituation::StillWorking,
    FollowUpSituation::NotFound,
];

/// What the supervisor typed in a referral's or a follow-up's form, shown again in it when
/// it is refused (they typed it once on a slow link; a POST's answer is never compressed).
#[derive(Default)]
struct Typed {
    service: String,
    provider: String,
    date: String,
    situation: String,
    next_due: String,
    notes: String,
    /// The form's entry key (`CasePage::entry`), kept when the form comes back with an error.
    entry: Option<Uuid>,
}

/// Why a case is erased: codes only, so that the audit log holds no free text.
#[derive(Default)]
struct CaseForm {
    error: Option<String>,
    form: &'static str,
    typed: Typed,
    confirm_erase: bool,
    /// One of `ERASE_REASONS`, or empty.
    erase_reason: &'static str,
    done: Option<String>,
}

fn case_page_of(hub: &Hub, ctx: &Ctx, id: Uuid, state: CaseForm) -> PageResult {
    let (viewer, who, view) = records(hub, ctx)?;
    let t = ctx.tr();
    let scoped = view.scoped(&who);
    let (case, adult_on) = scoped.get_case_with_adult_day(id)?;
    // Whoever is shown a child's file is in the audit log: on opening, and on a form's answer
    // that shows the page again (a refused step, which writes nothing else to the log).
    audit(hub, Some(viewer.user.id), "case_view", Some(id), "");
    let reference = hub.backend.reference()?;
    let names = user_names(&hub.backend.users()?);
    let name = |u: Uuid| names.get(&u).cloned().unwrap_or_else(|| u.to_string());
    let in_conflict = scoped.conflicts(id)?;
    // With a field it decides on in conflict, the case is classified by the most severe of
    // the values (`Record::derive_in_conflict`): said beside it, until someone keeps one.
    let classified_by_conflict = in_conflict.iter().any(|c| {
        matches!(&c.path[..], [field] if <ChildCase as Record>::DECIDING.contains(&field.as_str()))
    });
    let fields = vec![
        Field {
            label: t.get("case.status"),
            value: t.code("status", case.status.as_str()),
        },
        Field {
            label: t.get("case.classification"),
            value: case
                .classification
                .as_ref()
                .map(|c| {
                    let class = t.code("class", c.outcome.as_str());
                    match classified_by_conflict {
                        true => format!("{class} {}", t.get("case.class_by_conflict")),
                        false => class,
                    }
                })
                .unwrap_or_default(),
        },
        // Why, and by which rules: two children alike may be classified apart when a stricter
        // profile was published between their identifications.
        Field {
            label: t.get("case.classification_reason"),
            value: case
                .classification
                .as_ref()
                .map(|c| t.classification_reason(&c.reason))
                .unwrap_or_default(),
        },
        Field {
            label: t.get("case.rule_set"),
            value: case
                .classification
                .as_ref()
                .map(|c| match c.rule_set.rsplit_once('@') {
                    Some((profile, version)) => t
                        .get("case.rule_set_value")
                        .replacen("{}", profile, 1)
                        .replacen("{}", version, 1),
                    None => c.rule_set.clone(),
                })
                .unwrap_or_default(),
        },
        Field {
            label: t.get("case.sex"),
            value: t.code("sex", &code(case.sex)),
        },
        Field {
            label: t.get("case.age"),
            value: case
                .age_on(case.identified_on)
                .map(|a| a.to_string())
                .unwrap_or_default(),
        },
        Field {
            label: t.get("case.date_of_birth"),
            value: case.date_of_birth.map(|d| t.day(d)).unwrap_or_default(),
        },
        Field {
            label: t.get("field.area"),
            value: t.area_path(&reference, &case.area),
        },
        Field {
            label: t.get("case.identified_on"),
            value: t.day(case.identified_on),
        },
        Field {
            label: t.get("case.identified_by"),
            value: name(case.identified_by),
        },
        Field {
            label: t.get("case.guardian"),
            value: case.guardian.clone(),
        },
        Field {
            label: t.get("case.activity"),
            value: case.activity.clone(),
        },
        Field {
            label: t.get("case.hours"),
            value: case.hours_per_week.to_string(),
        },
        Field {
            label: t.get("case.hazards"),
            // Labels may hold commas ("Dangerous machinery, equipment or tools").
            value: case
                .hazards
                .iter()
                .map(|h| t.hazard(&reference, &case, h))
                .collect::<Vec<_>>()
                .join("; "),
        },
        Field {
            label: t.get("field.worst_forms"),
            // What a worst form calls for (the police, social protection) depends on which.
            value: case
                .worst_forms
                .iter()
                .map(|w| t.code("worst_form", w.as_str()))
                .collect::<Vec<_>>()
                .join("; "),
        },
        Field {
            label: t.get("field.night_work"),
            value: t
                .get(if case.night_work {
                    "labels.yes"
                } else {
                    "labels.no"
                })
                .to_string(),
        },
        Field {
            label: t.get("field.tasks"),
            // One per line (the values' cells keep line breaks): a task typed with a ";" in
            // it read as two.
            value: case.tasks.iter().cloned().collect::<Vec<_>>().join("\n"),
        },
        Field {
            label: t.get("field.household"),
            value: case.household.clone(),
        },
        Field {
            label: t.get("case.school"),
            value: t.code("school", &code(case.school)),
        },
        Field {
            label: t.get("case.remediated_on"),
            value: case.remediated_on.map(|d| t.day(d)).unwrap_or_default(),
        },
        Field {
            label: t.get("case.follow_up_due"),
            // What the due lists show: the schedule's next date, or the one a follow-up set;
            // none once the child is 18 (the lists leave the case then).
            value: case
                .follow_up_due_on(today(), adult_on)
                .map(|d| t.day(d))
                .unwrap_or_default(),
        },
    ];
    // The steps the case can take now: none for a merged duplicate (its kept case takes
    // them); closing only once what closing needs is on the record (a follow-up after the
    // verification finding the child out of work), as the core judges it.
    let tracking = vigie_core::rights::Tracking::of(&case);
    let steps = STATUSES
        .iter()
        .filter(|_| !case.is_merged_duplicate())
        .filter(|s| vigie_core::check_case_transition(case.status, **s, Role::Supervisor).is_ok())
        .filter(|s| {
            **s != CaseStatus::Closed
                || vigie_core::rights::check_case_facts(CaseStatus::Closed, tracking).is_ok()
        })
        .map(|s| (s.as_str(), t.code("status", s.as_str())))
        .collect();
    let referrals = case
        .referrals
        .values()
        .map(|r| Line2 {
            a: t.day(r.date),
            b: t.code("service", &code(r.service)),
            c: provider_name(&reference, &case, &r.provider),
            d: r.outcome.clone(),
        })
        .collect();
    let follow_ups = case
        .followups
        .values()
        .map(|f| Line2 {
            a: t.day(f.date),
            b: t.code("situation", &code(f.situation)),
            c: f.next_due.map(|d| t.day(d)).unwrap_or_default(),
            d: f.notes.clone(),
        })
        .collect();
    let conflicts = conflict_lines(
        t,
        (RecordKind::ChildCase, &hub.backend.received_times(id)?),
        in_conflict,
        Some(&case),
        &name,
        &|field, value| may_keep(&who, &case, field, value),
    );
    let history = history_lines(
        t,
        hub,
        &view,
        &who,
        (RecordKind::ChildCase, id),
        Some(&case),
        &names,
    )?;
    let mut attachments = attachment_lines(t, &view, &case, &names)?;
    // A file stays with the registration it was attached to: those of the duplicates merged
    // into this case are the child's too (attached before their phone saw the merge).
    for merged in merged_in_view(&scoped, &case) {
        attachments.extend(attachment_lines(t, &view, &merged, &names)?);
    }
    let mut candidates = Vec::new();
    if !case.is_merged_duplicate() {
        for found in scoped.duplicate_candidates(id)? {
            let c: ChildCase = scoped.get(found.case_id)?;
            candidates.push(Candidate {
                id: found.case_id,
                code: c.case_code,
                name: c.name,
                score: format!("{:.0} %", found.similarity * 100.0),
            });
        }
    }
    let status = if state.error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let providers = providers_in_force(&t, &reference, &case);
    let page = CasePage {
        t,
        nav: Nav::of(&viewer, "cases"),
        csrf: viewer.csrf.clone(),
        id,
        code: case.case_code.clone(),
        name: case.name.clone(),
        merged_into: case.merged_into.map(|kept| {
            let named = scoped
                .get::<ChildCase>(kept)
                .map(|k| format!("{} — {}", k.case_code, k.name));
            (kept, named.unwrap_or_else(|_| kept.to_string()))
        }),
        merged_both_ways: case.merged_into.is_some() && case.kept_as().is_none(),
        identified: case.status == CaseStatus::Identified,
        fields,
        workplace: case.workplace_id.and_then(|w| {
            let place: Workplace = scoped.get(w).ok()?;
            Some((w, place.name))
        }),
        visit: case.identified_on_visit.and_then(|v| {
            let visit: Visit = scoped.get(v).ok()?;
            Some((v, t.day(visit.started_at.date_naive())))
        }),
        notes: case.notes.clone(),
        steps,
        referrals,
        follow_ups,
        services: SERVICES
            .iter()
            .map(|s| (code(s), t.code("service", &code(s))))
            .collect(),
        providers,
        situations: SITUATIONS
            .iter()
            .map(|s| (code(s), t.code("situation", &code(s))))
            .collect(),
        conflicts,
        resolve_url: format!("/console/cases/{id}/resolve"),
        conflict_error: state.error.clone().filter(|_| state.form == "conflicts"),
        history,
        attachments,
        candidates,
        reasons: ERASE_REASONS
            .iter()
            .map(|r| (*r, t.get(&format!("erase.reason.{r}"))))
            .collect(),
        erase_reason: state.erase_reason,
        error: state.error,
        error_form: state.form,
        confirm_erase: state.confirm_erase,
        done: done_message(t, state.done.as_deref()),
        today: today().to_string(),
        entry: state.typed.entry.unwrap_or_else(Uuid::now_v7),
        typed: state.typed,
    };
    Ok((status, html(&page)).into_response())
}

#[derive(Deserialize, Default)]
pub struct DoneQuery {
    done: Option<String>,
    /// A case's erasure to confirm, for this reason (`case_erase`'s first step).
    erase: Option<String>,
    /// The confirmation's code was not the case's (`case_erase`).
    wrong: Option<String>,
}

/// A case's page; with `erase`, the erasure's confirmation for that reason (a page of its own,
/// so that Back from what follows finds a page to show again, not a form's answer).
pub async fn case_page(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    Query(q): Query<DoneQuery>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let reason = q
            .erase
            .as_deref()
            .and_then(|asked| ERASE_REASONS.iter().copied().find(|r| *r == asked));
        let state = match reason {
            Some(reason) => CaseForm {
                confirm_erase: true,
                erase_reason: reason,
                form: "erase",
                error: q
                    .wrong
                    .is_some()
                    .then(|| ctx.tr().get("erase.confirm_wrong").to_string()),
                ..Default::default()
            },
            None => CaseForm {
                done: q.done.clone(),
                ..Default::default()
            },
        };
        case_page_of(hub, ctx, id, state)
    })
    .await
}

/// The erasure's confirmation for `reason` (`case_page`), at its form.
fn erase_confirmation(id: Uuid, reason: &str, wrong: bool) -> Response {
    let wrong = if wrong { "&wrong=1" } else { "" };
    Redirect::to(&format!("/console/cases/{id}?erase={reason}{wrong}#erase")).into_response()
}

/// What a case form did, once done: the audit log's action and detail, and the message shown.
struct Done<'a> {
    action: &'a str,
    detail: &'a str,
    done: &'a str,
    /// Done by the same form sent before: nothing was written now, and the log has it already.
    again: bool,
}

/// A case form refused before anything was tried: the page again, saying what is wrong.
fn form_again(
    hub: &Hub,
    ctx: &Ctx,
    viewer: &Viewer,
    id: Uuid,
    problem: impl Into<String>,
    form: (&'static str, Typed),
) -> PageResult {
    let nothing = Done {
        action: "",
        detail: "",
        done: "",
        again: false,
    };
    case_outcome(hub, ctx, viewer, id, Err(problem.into()), form, nothing)
}

/// After a case form: back to the case with a message, or the page again with the error.
fn case_outcome(
    hub: &Hub,
    ctx: &Ctx,
    viewer: &Viewer,
    id: Uuid,
    outcome: Result<(), String>,
    (form, typed): (&'static str, Typed),
    Done {
        action,
        detail,
        done,
        again,
    }: Done<'_>,
) -> PageResult {
    match outcome {
        Ok(()) => {
            if !again {
                audit(hub, Some(viewer.user.id), action, Some(id), detail);
            }
            Ok(Redirect::to(&format!("/console/cases/{id}?done={done}")).into_response())
        }
        Err(message) => case_page_of(
            hub,
            ctx,
            id,
            CaseForm {
                error: Some(message),
                form,
                typed,
                ..Default::default()
            },
        ),
    }
}

#[derive(Deserialize)]
pub struct StatusForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    to: String,
    /// The verification's day, for withdrawn or prevented (`StepPage`).
    #[serde(default)]
    date: String,
    /// `yes` once the step's confirmation was shown and confirmed.
    #[serde(default)]
    confirm: String,
}

/// The confirmation of a step that counts the child in the figures for good (withdrawn,
/// prevented), with the day the child was verified out of work (`confirm.html`).
#[derive(Template)]
#[template(path = "step.html")]
struct StepPage {
    t: Tr,
    nav: Option<Nav>,
    csrf: String,
    c: Confirmation,
    to: &'static str,
    /// The day shown in the field: today at first, as typed when it was refused.
    date: String,
    today: String,
    error: Option<String>,
}

/// The step's confirmation page for case `id` (`case_status`); `error` says why the date typed
/// was refused (the page answers 422 then).
fn step_confirmation(
    viewer: &Viewer,
    ctx: &Ctx,
    (id, code): (Uuid, &str),
    to: CaseStatus,
    date: String,
    error: Option<String>,
) -> PageResult {
    let t = ctx.tr();
    let label = t.code("status", to.as_str());
    let counts = match to {
        CaseStatus::Prevented => "step.counts_prevented",
        _ => "step.counts_withdrawn",
    };
    let status = match error {
        Some(_) => StatusCode::UNPROCESSABLE_ENTITY,
        None => StatusCode::OK,
    };
    let page = StepPage {
        t,
        nav: Nav::of(viewer, "cases"),
        csrf: viewer.csrf.clone(),
        c: Confirmation {
            title: t.fmt("step.title", &label),
            question: t.fmt("step.question", code).replacen("{}", &label, 1),
            consequence: t.get(counts).to_string(),
            confirm: t.fmt("step.confirm", &label),
            action: format!("/console/cases/{id}/status"),
            back: format!("/console/cases/{id}#steps"),
        },
        to: to.as_str(),
        date,
        today: today().to_string(),
        error,
    };
    Ok((status, html(&page)).into_response())
}

pub async fn case_status(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    Posted(form): Posted<StatusForm>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let viewer = posted(hub, ctx, Access::Supervisor, &form.csrf)?;
        let t = ctx.tr();
        let Some(to) = STATUSES.iter().copied().find(|s| s.as_str() == form.to) else {
            return form_again(
                hub,
                ctx,
                &viewer,
                id,
                t.get("case.choose_status"),
                ("status", Typed::default()),
            );
        };
        let who = viewer.principal();
        // Withdrawn or prevented counts the child in the figures for good, on the day the
        // child was verified out of work: asked, and confirmed, on a page of its own before
        // anything is written.
        let verifies = matches!(to, CaseStatus::Withdrawn | CaseStatus::Prevented);
        let mut on = today();
        if verifies {
            let case: ChildCase = {
                let (_, who, view) = records(hub, ctx)?;
                view.scoped(&who).get(id)?
            };
            let from = case.status;
            if from == to && form.confirm == "yes" && !case.is_merged_duplicate() {
                // Verified meanwhile by someone else, on another day than the one typed here:
                // said, as the day counts the child in the figures and sets the follow-ups.
                if let Some(verified) = case
                    .remediated_on
                    .filter(|verified| parse_date(Some(form.date.trim())) != Some(*verified))
                {
                    let said = t.fmt("case.verified_meanwhile", t.day(verified));
                    return form_again(hub, ctx, &viewer, id, said, ("status", Typed::default()));
                }
                return status_done_before(hub, ctx, &viewer, id, to);
            }
            if case.is_merged_duplicate() {
                // Merged since the page was opened: said as such, not as the step's.
                let merged = t.refusal(&Error::NotAllowed {
                    rule: vigie_core::rights::MERGED_AWAY.into(),
                });
                return form_again(hub, ctx, &viewer, id, merged, ("status", Typed::default()));
            }
            if vigie_core::check_case_transition(from, to, Role::Supervisor).is_err() {
                let refused = t
                    .fmt("case.status_refused", t.code("status", from.as_str()))
                    .replacen("{}", &t.code("status", to.as_str()), 1);
                return form_again(hub, ctx, &viewer, id, refused, ("status", Typed::default()));
            }
            let shown = (id, case.case_code.as_str());
            if form.confirm != "yes" {
                return step_confirmation(&viewer, ctx, shown, to, today().to_string(), None);
            }
            let first_referral = case.referrals.values().map(|r| r.date).min();
            // Not after today, not before the first referral: the day the core keeps.
            let day = event_day(&t, &form.date).and_then(|day| match first_referral {
                _ if day > today() => Err(t.fmt("case.date_ahead", t.day(day))),
                Some(first) if first > day => {
                    Err(t.fmt("case.verified_before_referral", t.day(first)))
                }
                _ => Ok(day),
            });
            match day {
                Ok(day) => on = day,
                Err(problem) => {
                    let typed = form.date.trim().to_string();
                    return step_confirmation(&viewer, ctx, shown, to, typed, Some(problem));
                }
            }
        }
        let mut from = None;
        let mut verified_on = None;
        let mut closable = true;
        let mut first_referral = None;
        let changed = change::<ChildCase>(hub, &who, id, &mut |case| {
            // A merged duplicate's refusal is the core's (merged since the page was opened).
            from = Some(case.status).filter(|_| !case.is_merged_duplicate());
            verified_on = case.remediated_on;
            first_referral = case.referrals.values().map(|r| r.date).min();
            closable = vigie_core::rights::check_case_facts(
                CaseStatus::Closed,
                vigie_core::rights::Tracking::of(case),
            )
            .is_ok();
            workflow::transition(case, to, who.role, on)
        })?;
        // The same step sent twice (a double click, a form sent again): the case is where it
        // was asked to go, which is said, not refused as a step from a status to itself.
        if changed.is_err() && from == Some(to) {
            if let Some(verified) = verified_on.filter(|verified| verifies && *verified != on) {
                let said = t.fmt("case.verified_meanwhile", t.day(verified));
                return form_again(hub, ctx, &viewer, id, said, ("status", Typed::default()));
            }
            return status_done_before(hub, ctx, &viewer, id, to);
        }
        let outcome = changed
            .map(|_| ())
            .map_err(|e| match (&e, from, verified_on) {
                // Closing asks for what the record lacks: say what.
                (Error::NotAllowed { .. }, Some(_), Some(day))
                    if to == CaseStatus::Closed && !closable =>
                {
                    t.fmt("case.close_needs_follow_up", t.day(day))
                }
                // Verified before the first referral's day (a referral recorded meanwhile): say
                // which date is at odds.
                (Error::NotAllowed { .. }, Some(_), _)
                    if verifies && first_referral.is_some_and(|first| first > on) =>
                {
                    t.fmt(
                        "case.verified_before_referral",
                        first_referral.map(|d| t.day(d)).unwrap_or_default(),
                    )
                }
                // A step the page offered no more (a stale page, another supervisor meanwhile);
                // a step the case's record refuses says why (a follow-up that day saw the
                // child still working: reloading the page would change nothing).
                (Error::NotAllowed { .. }, Some(from), _)
                    if vigie_core::rights::check_case_transition(from, to, who.role).is_err() =>
                {
                    t.fmt("case.status_refused", t.code("status", from.as_str()))
                        .replacen("{}", &t.code("status", to.as_str()), 1)
                }
                _ => t.refusal(&e),
            });
        case_outcome(
            hub,
            ctx,
            &viewer,
            id,
            outcome,
            ("status", Typed::default()),
            Done {
                action: "case_status",
                detail: to.as_str(),
                done: "status",
                again: false,
            },
        )
    })
    .await
}

/// A status step the case had taken already, by the same form sent before: said done.
fn status_done_before(
    hub: &Hub,
    ctx: &Ctx,
    viewer: &Viewer,
    id: Uuid,
    to: CaseStatus,
) -> Result<Response, Problem> {
    case_outcome(
        hub,
        ctx,
        viewer,
        id,
        Ok(()),
        ("status", Typed::default()),
        Done {
            action: "case_status",
            detail: to.as_str(),
            done: "status",
            again: true,
        },
    )
}

#[derive(Deserialize)]
pub struct ReferralForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    service: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    date: String,
    /// `CasePage::entry`; a page rendered before it was a field has none (nor a form made by
    /// hand: an empty or unreadable one is none too).
    #[serde(default)]
    entry: String,
}

pub async fn case_referral(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    Posted(form): Posted<ReferralForm>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let viewer = posted(hub, ctx, Access::Supervisor, &form.csrf)?;
        let t = ctx.tr();
        let entry: Option<Uuid> = form.entry.parse().ok();
        let as_typed = || Typed {
            service: form.service.clone(),
            provider: form.provider.clone(),
            date: form.date.clone(),
            entry,
            ..Typed::default()
        };
        let service = SERVICES.iter().copied().find(|s| code(s) == form.service);
        // Each mistake said by itself, the first the form shows first.
        let typed = match (service, event_day(&t, &form.date)) {
            (None, _) => Err(t.get("case.service_needed").to_string()),
            (_, Err(problem)) => Err(problem),
            _ if form.provider.trim().is_empty() => Err(t.get("case.provider_needed").to_string()),
            (Some(service), Ok(date)) => Ok((service, date)),
        };
        let (service, date) = match typed {
            Ok(typed) => typed,
            Err(problem) => {
                return form_again(hub, ctx, &viewer, id, problem, ("referral", as_typed()));
            }
        };
        let who = viewer.principal();
        let referral = Referral {
            service,
            provider: form.provider.trim().to_string(),
            date,
            outcome: String::new(),
        };
        let (mut status, mut recorded, mut other_values) = (None, false, false);
        let reference = hub.backend.reference()?;
        let key = entry.unwrap_or_else(Uuid::now_v7);
        let outcome = change::<ChildCase>(hub, &who, id, &mut |case| {
            // A merged duplicate's refusal is the core's (work on the case kept), not its
            // status's.
            status = Some(case.status).filter(|_| !case.is_merged_duplicate());
            // This form's referral, recorded by the same form sent before; sent again
            // corrected, the correction is not taken for it.
            if let Some(held) = case.referrals.get(&key) {
                recorded = true;
                other_values = (held.service, &held.provider, held.date)
                    != (referral.service, &referral.provider, referral.date);
                return Ok(());
            }
            case.check_referral_in_force(&referral.provider, &reference)?;
            workflow::refer(case, key, referral.clone())
        })?
        .map(|_| ())
        .map_err(|e| match (&e, status) {
            (Error::NotAllowed { .. }, Some(status)) => {
                t.fmt("case.referral_refused", t.code("status", status.as_str()))
            }
            _ => t.refusal(&e),
        })
        .and_then(|()| match other_values {
            true => Err(t.get("case.sent_before_otherwise").to_string()),
            false => Ok(()),
        });
        case_outcome(
            hub,
            ctx,
            &viewer,
            id,
            outcome,
            ("referral", as_typed()),
            Done {
                action: "case_referral",
                detail: &code(service),
                done: "referral",
                again: recorded,
            },
        )
    })
    .await
}

#[derive(Deserialize)]
pub struct FollowUpForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    situation: String,
    #[serde(default)]
    date: String,
    #[serde(default)]
    next_due: String,
    #[serde(default)]
    notes: String,
    /// As `ReferralForm::entry`.
    #[serde(default)]
    entry: String,
}

pub async fn case_follow_up(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    Posted(form): Posted<FollowUpForm>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let viewer = posted(hub, ctx, Access::Supervisor, &form.csrf)?;
        let t = ctx.tr();
        let situation = SITUATIONS
            .iter()
            .copied()
            .find(|s| code(s) == form.situation);
        let entry: Option<Uuid> = form.entry.parse().ok();
        let as_typed = || Typed {
            situation: form.situation.clone(),
            date: form.date.clone(),
            next_due: form.next_due.clone(),
            notes: form.notes.clone(),
            entry,
            ..Typed::default()
        };
        let next_due = parse_date(Some(form.next_due.trim()));
        // Each mistake said by itself, the first the form shows first.
        let typed = match (situation, event_day(&t, &form.date)) {
            (None, _) => Err(t.get("case.situation_needed").to_string()),
            (_, Err(problem)) => Err(problem),
            _ if !form.next_due.trim().is_empty() && next_due.is_none() => {
                Err(t.get("case.next_due_invalid").to_string())
            }
            (Some(situation), Ok(date)) => Ok((situation, date)),
        };
        let (situation, date) = match typed {
            Ok(typed) => typed,
            Err(problem) => {
                return form_again(hub, ctx, &viewer, id, problem, ("follow_up", as_typed()));
            }
        };
        let who = viewer.principal();
        let reference = hub.backend.reference()?;
        let follow_up = FollowUp {
            date,
            situation,
            notes: form.notes.trim().to_string(),
            next_due,
        };
        let key = entry.unwrap_or_else(Uuid::now_v7);
        let (mut recorded, mut other_values) = (false, false);
        let outcome = change::<ChildCase>(hub, &who, id, &mut |case| {
            // This form's follow-up, recorded by the same form sent before (its answer lost on
            // the way); sent again corrected, the correction is not taken for it.
            if let Some(held) = case.followups.get(&key) {
                recorded = true;
                other_values = (held.date, held.situation, &held.notes)
                    != (follow_up.date, follow_up.situation, &follow_up.notes)
                    || follow_up
                        .next_due
                        .is_some_and(|next| held.next_due != Some(next));
                return Ok(());
            }
            workflow::follow(case, key, follow_up.clone(), &reference)
        })?
        .map(|_| ())
        .map_err(|e| t.refusal(&e))
        .and_then(|()| match other_values {
            true => Err(t.get("case.sent_before_otherwise").to_string()),
            false => Ok(()),
        });
        case_outcome(
            hub,
            ctx,
            &viewer,
            id,
            outcome,
            ("follow_up", as_typed()),
            Done {
                action: "case_follow_up",
                detail: &code(situation),
                done: "follow_up",
                again: recorded,
            },
        )
    })
    .await
}

#[derive(Deserialize)]
pub struct ResolveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    field: String,
    #[serde(default)]
    value: String,
}

/// Settles a conflict: the field keeps the value chosen among the concurrent ones.
pub async fn case_resolve(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    Posted(form): Posted<ResolveForm>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let viewer = posted(hub, ctx, Access::Supervisor, &form.csrf)?;
        let outcome = resolve::<ChildCase>(hub, ctx, &viewer, id, &form)?;
        case_outcome(
            hub,
            ctx,
            &viewer,
            id,
            outcome,
            ("conflicts", Typed::default()),
            Done {
                action: "case_resolve",
                detail: &form.field,
                done: "resolved",
                again: false,
            },
        )
    })
    .await
}

/// Keeps the value `form` chose for a field of record `id` in conflict, as the signed-in
/// supervisor; a refusal a person can act on comes back as its message.
fn resolve<R: Record>(
    hub: &Hub,
    ctx: &Ctx,
    viewer: &Viewer,
    id: Uuid,
    form: &ResolveForm,
) -> Result<Result<(), String>, Problem> {
    let t = ctx.tr();
    let path: Vec<String> = form.field.split('.').map(str::to_string).collect();
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&form.value) else {
        return Ok(Err(t.get("case.conflict_invalid").to_string()));
    };
    let who = viewer.principal();
    let (actor, reference) = (hub.backend.actor(), hub.backend.reference()?);
    match hub.backend.write(&mut |tx| {
        vigie_core::sync::resolve_as::<R>(tx, &who, &actor, &reference, id, &path, &value)
            .map(|_| ())
    }) {
        Ok(()) => Ok(Ok(())),
        // Settled meanwhile (another supervisor, a phone), or never there.
        Err(Error::NoSuchConflict { .. }) => Ok(Err(t.get("case.conflict_gone").to_string())),
        Err(e @ (Error::Validation(_) | Error::NotAllowed { .. })) => Ok(Err(t.refusal(&e))),
        Err(e) => Err(e.into()),
    }
}

/// After a conflict of the record `id` was settled: the journal's line, and back to its page
/// (`/console/<pages>/<id>`) saying so.
fn settled(
    hub: &Hub,
    viewer: &Viewer,
    action: &str,
    id: Uuid,
    form: &ResolveForm,
    pages: &str,
) -> PageResult {
    audit(hub, Some(viewer.user.id), action, Some(id), &form.field);
    Ok(Redirect::to(&format!("/console/{pages}/{id}?done=resolved")).into_response())
}

/// Settles a conflict of a visit (two reviews at once, say).
pub async fn visit_resolve(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    Posted(form): Posted<ResolveForm>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let viewer = posted(hub, ctx, Access::Supervisor, &form.csrf)?;
        match resolve::<Visit>(hub, ctx, &viewer, id, &form)? {
            Ok(()) => settled(hub, &viewer, "visit_resolve", id, &form, "visits"),
            Err(message) => visit_page_of(
                hub,
                ctx,
                id,
                VisitForm {
                    conflict_error: Some(message),
                    ..Default::default()
                },
                None,
            ),
        }
    })
    .await
}

/// Settles a conflict of a workplace.
pub async fn workplace_resolve(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    Posted(form): Posted<ResolveForm>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let viewer = posted(hub, ctx, Access::Supervisor, &form.csrf)?;
        match resolve::<Workplace>(hub, ctx, &viewer, id, &form)? {
            Ok(()) => settled(hub, &viewer, "workplace_resolve", id, &form, "workplaces"),
            Err(message) => workplace_page_of(hub, ctx, id, Some(message), None),
        }
    })
    .await
}

#[derive(Deserialize)]
pub struct MergeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    duplicate: String,
    /// The duplicate's case code, typed: a registration of another community (a child
    /// registered where they live and where they work), which the candidates leave out.
    #[serde(default)]
    code: String,
    /// `yes` once both children were shown side by side and the merge confirmed (`MergePage`).
    #[serde(default)]
    confirm: String,
}

/// The confirmation of a merge, which is not undone: both children side by side
/// (`confirm.html`).
#[derive(Template)]
#[template(path = "merge.html")]
struct MergePage {
    t: Tr,
    nav: Option<Nav>,
    csrf: String,
    c: Confirmation,
    duplicate: Uuid,
    /// Each value compared: its label, the case kept's, the duplicate's.
    rows: Vec<(&'static str, String, String)>,
}

/// The merge of `duplicate` into `kept` to confirm, both children side by side: code, name,
/// sex, date of birth (else estimated age), community and status.
fn merge_confirmation(
    hub: &Hub,
    ctx: &Ctx,
    viewer: &Viewer,
    kept: &ChildCase,
    duplicate: &ChildCase,
) -> PageResult {
    let t = ctx.tr();
    let reference = hub.backend.reference()?;
    // Whoever is shown a child's file is in the audit log (as the case's page journals it).
    for shown in [kept.id, duplicate.id] {
        audit(hub, Some(viewer.user.id), "case_view", Some(shown), "");
    }
    let born = |c: &ChildCase| match (c.date_of_birth, c.estimated_age) {
        (Some(day), _) => t.day(day),
        (None, Some(age)) => t.fmt("merge.estimated_age", age),
        (None, None) => String::new(),
    };
    let row = |label: &'static str, value: &dyn Fn(&ChildCase) -> String| {
        (label, value(kept), value(duplicate))
    };
    let rows = vec![
        row(t.get("case.code"), &|c| c.case_code.clone()),
        row(t.get("case.name"), &|c| c.name.clone()),
        row(t.get("case.sex"), &|c| t.code("sex", &code(c.sex))),
        row(t.get("merge.born"), &born),
        row(t.get("field.community"), &|c| {
            t.area(&reference, &c.area.community)
        }),
        row(t.get("case.status"), &|c| {
            t.code("status", c.status.as_str())
        }),
    ];
    let page = MergePage {
        t,
        nav: Nav::of(viewer, "cases"),
        csrf: viewer.csrf.clone(),
        c: Confirmation {
            title: t.get("merge.title").to_string(),
            question: t.fmt("merge.question", &duplicate.case_code).replacen(
                "{}",
                &kept.case_code,
                1,
            ),
            consequence: t.get("merge.consequence").to_string(),
            confirm: t.get("merge.confirm").to_string(),
            action: format!("/console/cases/{}/merge", kept.id),
            back: format!("/console/cases/{}#duplicates", kept.id),
        },
        duplicate: duplicate.id,
        rows,
    };
    Ok(html(&page))
}

/// The cases of the supervisor's areas whose code is `typed` (letter case and spaces aside),
/// merged duplicates aside.
fn cases_of_code(hub: &Hub, who: &Principal, typed: &str) -> Result<Vec<Uuid>, Problem> {
    let typed: String = typed.split_whitespace().collect();
    if typed.is_empty() {
        return Ok(Vec::new());
    }
    let view = hub.console.views.current(hub.backend.as_ref())?;
    let query = ChildCaseQuery {
        code: Some(typed.clone()),
        ..ChildCaseQuery::default()
    };
    let found: Vec<Uuid> = view
        .scoped(who)
        .child_cases(&query, None, Page::first(Page::MAX_LIMIT))?
        .into_iter()
        .filter(|c| c.case_code.eq_ignore_ascii_case(&typed))
        .map(|c| c.id)
        .collect();
    Ok(found)
}

pub async fn case_merge(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    Posted(form): Posted<MergeForm>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let viewer = posted(hub, ctx, Access::Supervisor, &form.csrf)?;
        let t = ctx.tr();
        // The case's page again, the merge's form saying what was refused.
        let merge_again =
            |problem: &str| form_again(hub, ctx, &viewer, id, problem, ("merge", Typed::default()));
        // The duplicate as the candidates name it, or as typed: its code, or its id (the end
        // of its page's address) where several cases have one code.
        let duplicate = match form
            .duplicate
            .parse::<Uuid>()
            .or_else(|_| form.code.trim().parse::<Uuid>())
        {
            Ok(id) => Some(id),
            Err(_) => match cases_of_code(hub, &viewer.principal(), &form.code)?[..] {
                [one] => Some(one),
                [] => None,
                // Codes are not unique everywhere (typed by hand): the supervisor picks.
                _ => return merge_again(t.get("case.code_of_several")),
            },
        };
        let Some(duplicate) = duplicate else {
            return merge_again(t.get("case.choose_duplicate"));
        };
        if duplicate == id {
            return merge_again(t.get("merge.self"));
        }
        // A merge is not undone: nothing is written before both children were shown side by
        // side and the merge confirmed. One the core would refuse is said at once.
        if form.confirm != "yes" {
            let (_, who, view) = records(hub, ctx)?;
            let scoped = view.scoped(&who);
            let kept: ChildCase = scoped.get(id)?;
            let Ok(found) = scoped.get::<ChildCase>(duplicate) else {
                return merge_again(t.get("case.choose_duplicate"));
            };
            let reference = hub.backend.reference()?;
            let tried =
                vigie_core::duplicates::merge(&mut kept.clone(), &mut found.clone(), &reference);
            return match tried {
                Ok(_) => merge_confirmation(hub, ctx, &viewer, &kept, &found),
                Err(e @ (Error::NotAllowed { .. } | Error::Validation(_))) => {
                    merge_again(&t.refusal(&e))
                }
                Err(e) => Err(e.into()),
            };
        }
        let who = viewer.principal();
        let (actor, reference) = (hub.backend.actor(), hub.backend.reference()?);
        // Both cases in one transaction, each checked as the supervisor's own change. Merged
        // already into this case (the confirmation sent twice): done, journaled once.
        let mut merged_now = false;
        let outcome = hub.backend.write(&mut |tx| {
            // A case outside the supervisor's areas is one that is not there: what its
            // merge would have refused must not tell its state.
            let mut dup: ChildCase = vigie_core::sync::read_as(tx, &who, &reference, duplicate)?
                .ok_or(Error::NotFound {
                    kind: Some(RecordKind::ChildCase),
                    id: duplicate,
                })?;
            let mut kept_after = None;
            change_as::<ChildCase>(tx, &who, &actor, &reference, id, &mut |kept| {
                merged_now = vigie_core::duplicates::merge(kept, &mut dup, &reference)?;
                kept_after = Some(kept.id);
                Ok(())
            })?;
            let (merged_into, merged_from) = (dup.merged_into, dup.merged_from.clone());
            change_as::<ChildCase>(tx, &who, &actor, &reference, duplicate, &mut |d| {
                d.merged_into = merged_into;
                d.merged_from = merged_from.clone();
                Ok(())
            })?;
            Ok(())
        });
        let outcome = match outcome {
            Ok(()) => Ok(()),
            Err(e @ (Error::NotAllowed { .. } | Error::Validation(_))) => Err(t.refusal(&e)),
            Err(Error::NotFound { .. }) => Err(t.get("case.choose_duplicate").into()),
            Err(e) => return Err(e.into()),
        };
        case_outcome(
            hub,
            ctx,
            &viewer,
            id,
            outcome,
            ("merge", Typed::default()),
            Done {
                action: "case_merge",
                detail: &duplicate.to_string(),
                done: "merged",
                again: !merged_now,
            },
        )
    })
    .await
}

#[derive(Deserialize)]
pub struct EraseForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    confirm: String,
}

/// Erasure in two steps: the form with a reason shows the confirmation (type the case's code);
/// the confirmed form erases.
pub async fn case_erase(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    Posted(form): Posted<EraseForm>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let viewer = posted(hub, ctx, Access::Supervisor, &form.csrf)?;
        let t = ctx.tr();
        let Some(reason) = ERASE_REASONS.iter().copied().find(|r| *r == form.reason) else {
            return form_again(
                hub,
                ctx,
                &viewer,
                id,
                t.get("erase.reason_needed"),
                ("erase", Typed::default()),
            );
        };
        let gone = || Redirect::to("/console/cases?done=erase_gone").into_response();
        let case_code = {
            let (_, who, view) = records(hub, ctx)?;
            match view.scoped(&who).get::<ChildCase>(id) {
                Ok(case) => case.case_code,
                // The same form sent twice (a double click, Back then send), or two supervisors
                // erasing at once: the case is gone, which is what was asked. Said without
                // telling an erased case from one outside the supervisor's areas.
                Err(vigie_core::Error::NotFound { .. }) => return Ok(gone()),
                Err(e) => return Err(e.into()),
            }
        };
        // The confirmation, and a wrong code's, are pages of their own (POST, then GET).
        if form.confirm.is_empty() || form.confirm.trim() != case_code {
            return Ok(erase_confirmation(id, reason, !form.confirm.is_empty()));
        }
        // Erased by another request meanwhile (the same form sent twice, nothing erased now):
        // done, and journaled once, by the request that erased it.
        match erase_journaled(&*hub.backend, viewer.user.id, id, reason, false) {
            Ok(_) => Ok(Redirect::to("/console/cases?done=erased").into_response()),
            Err(Error::NotFound { .. }) => Ok(gone()),
            Err(Error::NotAllowed { rule }) if rule == crate::backend::ERASED_ALREADY => Ok(gone()),
            Err(e @ Error::NotAllowed { .. }) => form_again(
                hub,
                ctx,
                &viewer,
                id,
                t.refusal(&e),
                ("erase", Typed::default()),
            ),
            Err(e) => Err(e.into()),
        }
    })
    .await
}

#[derive(Template)]
#[template(path = "workplace.html")]
struct WorkplacePage {
    t: Tr,
    nav: Option<Nav>,
    csrf: String,
    name: String,
    fields: Vec<Field>,
    visits: Vec<VisitLine>,
    /// How many of its visits found a breach, said when one did (repeated breaches).
    violations: String,
    /// Said when some visits are not listed: how many are, of how many.
    visits_shown: String,
    conflicts: Vec<ConflictLine>,
    resolve_url: String,
    conflict_error: Option<String>,
    attachments: Vec<AttachmentLine>,
    history: History,
    done: Option<&'static str>,
}

/// The latest visits a workplace's page lists (with every older one that found a breach).
const VISITS_LISTED: usize = 50;
/// The most visits a workplace's page reads, and lists.
const MAX_WORKPLACE_VISITS_READ: usize = 10_000;
const MAX_WORKPLACE_VISITS_LISTED: usize = 500;

/// A workplace's buyers or suppliers as a person reads them: the first hundred, one per line
/// (the values' cells keep line breaks; joined with commas, a buyer "Coop, Soubré" read as
/// two), then how many more (a cooperative may name thousands).
fn names_listed(names: &std::collections::BTreeSet<String>) -> String {
    const SHOWN: usize = 100;
    let mut lines = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    if names.len() > SHOWN {
        lines.push_str(&format!("\n… (+{})", names.len() - SHOWN));
    }
    lines
}

pub async fn workplace_page(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    Query(q): Query<DoneQuery>,
) -> Response {
    run(hub, ctx, move |hub, ctx| {
        workplace_page_of(hub, ctx, id, None, q.done.as_deref())
    })
    .await
}

fn workplace_page_of(
    hub: &Hub,
    ctx: &Ctx,
    id: Uuid,
    conflict_error: Option<String>,
    done: Option<&str>,
) -> PageResult {
    let (viewer, who, view) = records(hub, ctx)?;
    let t = ctx.tr();
    let scoped = view.scoped(&who);
    let w: Workplace = scoped.get(id)?;
    // A workplace's page names its owner and how to reach them.
    audit(hub, Some(viewer.user.id), "workplace_view", Some(id), "");
    let names = user_names(&hub.backend.users()?);
    let name = |u: Uuid| names.get(&u).cloned().unwrap_or_else(|| u.to_string());
    let reference = hub.backend.reference()?;
    let fields = vec![
        Field {
            label: t.get("workplace.sector"),
            value: t.sector(&reference, &w.sector, Some(&w.location.area.country)),
        },
        Field {
            label: t.get("field.area"),
            value: t.area_path(&reference, &w.location.area),
        },
        Field {
            label: t.get("field.formality"),
            value: t.code("formality", w.formality.as_str()),
        },
        Field {
            label: t.get("workplace.owner"),
            value: w.owner_name.clone(),
        },
        Field {
            label: t.get("field.owner_contact"),
            value: w.owner_contact.clone(),
        },
        Field {
            label: t.get("field.buyers"),
            value: names_listed(&w.buyers),
        },
        Field {
            label: t.get("field.suppliers"),
            value: names_listed(&w.suppliers),
        },
        Field {
            label: t.get("field.notes"),
            value: w.notes.clone(),
        },
    ];
    // Every visit of the workplace is counted (a breach found at its 51st latest visit is a
    // repeated breach all the same); the latest are listed, and every one that found a breach
    // or forced-labour indicators, however old.
    let query = vigie_core::VisitQuery {
        workplace_id: Some(id),
        ..Default::default()
    };
    let mut marked = Vec::new();
    let mut page = Page::first(Page::MAX_LIMIT);
    while marked.len() < MAX_WORKPLACE_VISITS_READ {
        let got = scoped.visits_marked(&query, page)?;
        let full = got.len() == page.limit as usize;
        marked.extend(got);
        if !full {
            break;
        }
        page = page.next();
    }
    let total = marked.len();
    let breached = marked.iter().filter(|item| item.violation).count();
    let visits: Vec<VisitLine> = marked
        .into_iter()
        .enumerate()
        .filter(|(at, item)| *at < VISITS_LISTED || item.violation || item.forced_labour)
        .map(|(_, item)| item)
        .take(MAX_WORKPLACE_VISITS_LISTED)
        .map(|item| {
            let v = item.visit;
            VisitLine {
                id: v.id,
                started: t.day(v.started_on),
                kind: t.code("visit_kind", &code(v.kind)),
                visitor: names.get(&v.visitor_id).cloned().unwrap_or_default(),
                community: String::new(),
                status: t.code("visit_status", v.status.as_str()),
                urgent: item.forced_labour,
                violation: item.violation,
                alert: item
                    .severity
                    .map(|s| severity_label(t, s, RecordKind::Visit)),
                without_case: without_case_label(t, item.children_without_case),
            }
        })
        .collect();
    let visits_shown = match visits.len() < total {
        true => t
            .get("workplace.visits_shown")
            .replacen("{}", &t.count(visits.len()), 1)
            .replacen("{}", &t.count(total), 1),
        false => String::new(),
    };
    let violations = match breached {
        0 => String::new(),
        n => t.plural("workplace.violations", n),
    };
    let conflicts = conflict_lines(
        t,
        (RecordKind::Workplace, &hub.backend.received_times(id)?),
        scoped.conflicts(id)?,
        None,
        &name,
        &|field, value| may_keep(&who, &w, field, value),
    );
    let history = history_lines(
        t,
        hub,
        &view,
        &who,
        (RecordKind::Workplace, id),
        None,
        &names,
    )?;
    let attachments = attachment_lines(t, &view, &w, &names)?;
    let status = match conflict_error {
        Some(_) => StatusCode::UNPROCESSABLE_ENTITY,
        None => StatusCode::OK,
    };
    let page = WorkplacePage {
        t,
        nav: Nav::of(&viewer, "map"),
        csrf: viewer.csrf.clone(),
        name: w.name.clone(),
        fields,
        visits,
        violations,
        visits_shown,
        conflicts,
        resolve_url: format!("/console/workplaces/{id}/resolve"),
        conflict_error,
        attachments,
        history,
        done: done_message(t, done),
    };
    Ok((status, html(&page)).into_response())
}

// ---------------------------------------------------------------------------------------------
// Map

#[derive(Deserialize, Default)]
pub struct MapQuery {
    from: Option<String>,
    until: Option<String>,
}

#[derive(Template)]
#[template(path = "map.html")]
struct MapPage {
    t: Tr,
    nav: Option<Nav>,
    from: String,
    until: String,
    error: Option<&'static str>,
    svg: String,
    workplaces: usize,
    visits: usize,
    left_out: usize,
    /// Workplaces and visits of the period recorded with no position, drawn nowhere.
    unplaced: Option<String>,
    by_community: Vec<CommunityLine>,
    aggregate: bool,
}

/// Visits drawn at most; the most urgent first.
const MAP_VISITS: usize = 2000;
/// Workplaces and visits drawn one by one at most; past it, one point per community.
const MAP_POINTS: usize = 600;

/// A community's line of the table under the map (and its point, once aggregated).
struct CommunityLine {
    code: String,
    name: String,
    workplaces: usize,
    /// Workplaces by their worst alert: worst form, hazardous, forced labour.
    alerting: [usize; 3],
    visits: usize,
    latitude: f64,
    longitude: f64,
    worst: Option<AlertSeverity>,
}

/// The map's places counted by community, in the page's reading order.
fn map_table(
    places: &vigie_core::store::Places,
    reference: &vigie_core::ReferenceData,
    t: Tr,
) -> Vec<CommunityLine> {
    let mut lines: std::collections::BTreeMap<&str, CommunityLine> = Default::default();
    for p in places.workplaces.iter().chain(&places.visits) {
        let line = lines.entry(&p.community).or_insert_with(|| CommunityLine {
            code: p.community.clone(),
            name: t.area(reference, &p.community),
            workplaces: 0,
            alerting: [0; 3],
            visits: 0,
            latitude: 0.0,
            longitude: 0.0,
            worst: None,
        });
        if map_level(p.severity) > map_level(line.worst) {
            line.worst = p.severity;
        }
    }
    for p in &places.workplaces {
        let Some(line) = lines.get_mut(p.community.as_str()) else {
            continue;
        };
        line.workplaces += 1;
        line.visits += p.visits as usize;
        line.latitude += p.latitude;
        line.longitude += p.longitude;
        match map_level(p.severity) {
            3 => line.alerting[0] += 1,
            2 => line.alerting[1] += 1,
            1 => line.alerting[2] += 1,
            _ => {}
        }
    }
    let mut lines: Vec<CommunityLine> = lines
        .into_values()
        .map(|mut line| {
            let n = line.workplaces.max(1) as f64;
            (line.latitude, line.longitude) = (line.latitude / n, line.longitude / n);
            line
        })
        .collect();
    lines.sort_by_cached_key(|line| (vigie_core::fold_name(&line.name), line.code.clone()));
    lines
}

/// How a place's alert is drawn on the map, from none (0) to a worst form (3).
fn map_level(severity: Option<AlertSeverity>) -> usize {
    match severity {
        Some(AlertSeverity::WorstFormSuspected) => 3,
        Some(AlertSeverity::HazardousChildLabour | AlertSeverity::StillWorking) => 2,
        Some(AlertSeverity::ForcedLabourLikely | AlertSeverity::ForcedLabourIndicators) => 1,
        None => 0,
    }
}

/// The CSS class of a point at `map_level` (`charts::Point::class`).
fn map_class(severity: Option<AlertSeverity>) -> &'static str {
    ["sev-0", "sev-1", "sev-2", "sev-3"][map_level(severity)]
}

/// What a point's colour shows, in words: its name says it, for whoever cannot tell the
/// colours apart or reads the map by keyboard or screen reader. A visit's worst form is forced
/// labour where children work; a workplace's or a community's may be a child's case of any
/// worst form, named as the alerts list names it.
fn map_alert(t: Tr, severity: Option<AlertSeverity>, kind: RecordKind) -> &'static str {
    match severity {
        Some(s) => severity_label(t, s, kind).0,
        None => t.get("map.no_alert"),
    }
}

/// One point per community with workplaces drawn (`map`'s aggregate view).
fn community_points(t: Tr, lines: &[CommunityLine]) -> Vec<Point> {
    lines
        .iter()
        .filter(|line| line.workplaces > 0)
        .map(|line| Point {
            latitude: line.latitude,
            longitude: line.longitude,
            class: map_class(line.worst),
            radius: (3.0 + (line.workplaces as f64).sqrt()).min(16.0),
            title: format!(
                "{} · {} · {}",
                line.name,
                t.plural("map.counts_workplaces", line.workplaces),
                map_alert(t, line.worst, RecordKind::Workplace)
            ),
            href: Some(format!("#community-{}", line.code)),
        })
        .collect()
}

pub async fn map(State(hub): State<Arc<Hub>>, ctx: Ctx, Query(q): Query<MapQuery>) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let (viewer, who, view) = records(hub, ctx)?;
        let t = ctx.tr();
        let default_until = today() + chrono::Days::new(1);
        let default_from = today()
            .checked_sub_months(Months::new(3))
            .unwrap_or(today());
        let from_in = parse_date(q.from.as_deref());
        let until_in = parse_date(q.until.as_deref());
        let bad = (q.from.as_deref().is_some_and(|f| !f.is_empty()) && from_in.is_none())
            || (q.until.as_deref().is_some_and(|u| !u.is_empty()) && until_in.is_none())
            || matches!((from_in, until_in), (Some(f), Some(u)) if f >= u);
        let (from, until) = if bad {
            (default_from, default_until)
        } else {
            (
                from_in.unwrap_or(default_from),
                until_in.unwrap_or(default_until),
            )
        };
        let places = view.scoped(&who).places(from, until, MAP_VISITS)?;
        let reference = hub.backend.reference()?;
        let by_community = map_table(&places, &reference, t);
        // A region's every workplace and visit drawn was 4 MB (a minute and more on 2G, and
        // 200,000 page elements for a cheap phone): past a few hundred points, one point
        // per community, placed at its workplaces, sized by how many, coloured by its worst
        // alert; the table under the map says the same in words.
        let aggregate = places.workplaces.len() + places.visits.len() > MAP_POINTS;
        let points: Vec<Point> = if aggregate {
            community_points(t, &by_community)
        } else {
            let workplaces = places.workplaces.iter().map(|p| Point {
                latitude: p.latitude,
                longitude: p.longitude,
                class: map_class(p.severity),
                radius: 4.0,
                title: format!(
                    "{} · {} · {} · {}",
                    p.name,
                    map_alert(t, p.severity, RecordKind::Workplace),
                    t.area(&reference, &p.community),
                    t.plural("map.visits_in_period", p.visits)
                ),
                href: Some(format!("/console/workplaces/{}", p.id)),
            });
            let visits = places.visits.iter().map(|p| Point {
                latitude: p.latitude,
                longitude: p.longitude,
                class: match p.severity {
                    Some(_) => map_class(p.severity),
                    None => "visit",
                },
                radius: 2.0,
                title: format!(
                    "{} · {} · {}",
                    t.get("map.visit"),
                    map_alert(t, p.severity, RecordKind::Visit),
                    t.area(&reference, &p.community)
                ),
                href: Some(format!("/console/visits/{}", p.id)),
            });
            workplaces.chain(visits).collect()
        };
        let outlines = area_outlines(&view, &who, t.lang());
        let tile = hub.console.settings.tile_url.as_deref();
        let svg = charts::map(t.get("map.title"), &points, &outlines, tile);
        let page = MapPage {
            t,
            nav: Nav::of(&viewer, "map"),
            from: from.to_string(),
            until: until.to_string(),
            error: bad.then(|| t.get("overview.bad_period")),
            svg,
            workplaces: places.workplaces.len(),
            visits: places.visits.len(),
            left_out: places.visits_left_out,
            unplaced: (places.workplaces_unplaced + places.visits_unplaced > 0).then(|| {
                t.get("map.unplaced")
                    .replacen(
                        "{}",
                        &t.plural("map.counts_workplaces", places.workplaces_unplaced),
                        1,
                    )
                    .replacen(
                        "{}",
                        &t.plural("map.unplaced_visits", places.visits_unplaced),
                        1,
                    )
            }),
            by_community,
            aggregate,
        };
        let mut response = (
            if bad {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::OK
            },
            html(&page),
        )
            .into_response();
        if let Some(origin) = tile.and_then(tile_origin)
            && let Ok(value) = crate::console::csp_with_tiles(&origin).parse()
        {
            response
                .headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, value);
        }
        Ok(response)
    })
    .await
}

/// The scheme and host of a tile URL template, for the page's policy.
fn tile_origin(template: &str) -> Option<String> {
    let (scheme, rest) = template.split_once("://")?;
    let host = rest.split('/').next()?;
    (!host.contains('{') && (scheme == "https" || scheme == "http"))
        .then(|| format!("{scheme}://{host}"))
}

/// The outlines of the areas the supervisor covers and of the areas inside them, from the area
/// trees in force (none when the published trees carry no outlines).
fn area_outlines(store: &Store, who: &Principal, lang: &str) -> Vec<charts::Outline> {
    const MAX_OUTLINES: usize = 2_000;
    let reference = store.reference();
    let scope = who.scope(&reference);
    let mut out = Vec::new();
    for grant in scope.areas.grants() {
        let Some(node) = reference
            .area_tree(&grant.country)
            .and_then(|tree| tree.find(&grant.code))
        else {
            continue;
        };
        let mut stack = vec![node];
        while let Some(node) = stack.pop() {
            if out.len() >= MAX_OUTLINES {
                return out;
            }
            if !node.outline.is_empty() {
                out.push(charts::Outline {
                    label: node.labels.get(lang).unwrap_or(&node.code).to_string(),
                    rings: node
                        .outline
                        .0
                        .iter()
                        .map(|ring| ring.iter().map(|[lon, lat]| (*lon, *lat)).collect())
                        .collect(),
                });
            }
            stack.extend(node.children.iter());
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Exports

#[derive(Template)]
#[template(path = "exports.html")]
struct ExportsPage {
    t: Tr,
    nav: Option<Nav>,
    tables: Vec<&'static str>,
    personal_allowed: bool,
}

use vigie_core::features::export::TABLES;

pub async fn exports(State(hub): State<Arc<Hub>>, ctx: Ctx) -> Response {
    run(hub, ctx, move |hub, ctx| {
        let viewer = viewer_with(hub, ctx, Access::Supervisor)?;
        let page = ExportsPage {
            t: ctx.tr(),
            nav: Nav::of(&viewer, "exports"),
            tables: TABLES.to_vec(),
            personal_allowed: viewer.user.role == Role::Supervisor,
        };
        Ok(html(&page))
    })
    .await
}

#[derive(Deserialize)]
pub struct ExportQuery {
    table: Option<String>,
    format: Option<String>,
    personal: Option<String>,
}

/// Runs `work`, a download (an export, an attachment's file), once the signed-in supervisor's
/// turn comes (`download_turn`); anyone else is answered at once.
async fn run_download(
    hub: Arc<Hub>,
    ctx: Ctx,
    work: impl FnOnce(&Hub, &Ctx) -> PageResult + Send + 'static,
) -> Response {
    let _turn = match download_turn(&hub, &ctx).await {
        Ok(turn) => turn,
        Err(answer) => return answer,
    };
    run(hub, ctx, work).await
}

/// Waits, holding no console thread, for the signed-in supervisor's turn to build a download
/// (`Console::download_turn`); the answer instead for anyone else, given at once.
async fn download_turn(
    hub: &Arc<Hub>,
    ctx: &Ctx,
) -> Result<crate::console::DownloadTurn, Response> {
    let supervisor = Arc::new(std::sync::OnceLock::new());
    let found = supervisor.clone();
    let signed_in = run(hub.clone(), ctx.clone(), move |hub, ctx| {
        let _ = found.set(viewer_with(hub, ctx, Access::Supervisor)?.user.id);
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await;
    match supervisor
        .get()
        .filter(|_| signed_in.status() == StatusCode::NO_CONTENT)
    {
        Some(user) => Ok(hub.console.download_turn(*user).await),
        None => Err(signed_in),
    }
}

pub async fn export_download(
    State(hub): State<Arc<Hub>>,
    ctx: Ctx,
    method: axum::http::Method,
    Query(q): Query<ExportQuery>,
) -> Response {
    // A download manager's HEAD asks what the file is: answered without making it (it ran the
    // export and journaled one).
    let head = method == axum::http::Method::HEAD;
    let turn = match download_turn(&hub, &ctx).await {
        Ok(turn) => turn,
        Err(answer) => return answer,
    };
    let reader = hub.clone();
    run(hub, ctx, move |hub, ctx| {
        // The view is the thread's to open: this one checks who asks, and what.
        let viewer = viewer_with(hub, ctx, Access::Supervisor)?;
        let who = viewer.principal();
        let Some(table) = TABLES
            .iter()
            .copied()
            .find(|t| Some(*t) == q.table.as_deref())
        else {
            return Err(Problem::NotFound);
        };
        let format = match q.format.as_deref() {
            Some("json") => ExportFormat::Json,
            Some("excel") => ExportFormat::ExcelCsv,
            None | Some("csv") => ExportFormat::Csv,
            // A format the page does not offer is not quietly another one.
            Some(_) => return Err(Problem::NotFound),
        };
        let personal = q.personal.as_deref() == Some("1");
        let options = ExportOptions {
            include_personal_data: personal,
        };
        let role = viewer.user.role;
        vigie_core::features::export::may_export(options, role)?;
        let kind = match format {
            ExportFormat::Json => "application/json",
            ExportFormat::Csv | ExportFormat::ExcelCsv => "text/csv; charset=utf-8",
        };
        let ext = format.extension();
        let disposition = format!(
            "attachment; filename=\"vigie-{table}-{}.{ext}\"",
            today().format("%Y%m%d")
        );
        if head {
            return Ok((
                [
                    (header::CONTENT_TYPE, kind.to_string()),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                (),
            )
                .into_response());
        }
        audit(
            hub,
            Some(viewer.user.id),
            "export",
            None,
            &format!(
                "{table} {}{}",
                format.code(),
                if personal { " personal" } else { "" }
            ),
        );
        // The rows go out as they are read, from a thread of their own that holds the
        // supervisor's download turn to the end: a region's visits (100,000 rows) took 25 s
        // before their first byte and a gigabyte of the hub's memory, built whole.
        let (chunks, body) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
        // Set once the whole table was handed on: any other end of the stream is an error.
        let whole = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let made_whole = whole.clone();
        let streamed = std::thread::Builder::new()
            .name("vigie-export".into())
            .spawn(move || {
                let _turn = turn;
                let mut out = Chunks::new(chunks.clone());
                // A panic ends the download as an error does: the end of the stream alone
                // would read as a whole, shorter file.
                let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    reader
                        .console
                        .views
                        .current(reader.backend.as_ref())
                        .and_then(|view| {
                            view.scoped(&who)
                                .export_table_to(table, options, role, format, &mut out)
                        })
                }));
                let failed = match written {
                    Ok(Ok(_)) => {
                        made_whole.store(true, std::sync::atomic::Ordering::Release);
                        None
                    }
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(_) => Some("a panic".to_string()),
                };
                if let Some(why) = failed {
                    // The download is cut, not ended: a browser says it failed.
                    tracing::error!(error = %why, "an export failed part way: its download was cut");
                    let _ = Chunks::hand_on(&chunks, Err(std::io::Error::other("export failed")));
                }
            });
        if let Err(e) = streamed {
            return Err(Error::Io(e).into());
        }
        // Polled again after its end (compression does), a receiver says the end again. A
        // table not handed on whole (its thread gave up on a stalled browser, or died) ends
        // in an error, never as a whole, shorter file.
        let mut body = body;
        let mut cut_said = false;
        let body = futures_util::stream::poll_fn(move |cx| match body.poll_recv(cx) {
            std::task::Poll::Ready(None)
                if !whole.load(std::sync::atomic::Ordering::Acquire) && !cut_said =>
            {
                cut_said = true;
                std::task::Poll::Ready(Some(Err(std::io::Error::other("export cut"))))
            }
            other => other,
        });
        Ok((
            [
                (header::CONTENT_TYPE, kind.to_string()),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            axum::body::Body::from_stream(body),
        )
            .into_response())
    })
    .await
}

/// An export's bytes handed to its download a chunk at a time (`export_download`); a browser
/// that went away ends the export at its next chunk.
struct Chunks {
    to: tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>,
    held: Vec<u8>,
}

impl Chunks {
    const SIZE: usize = 64 * 1024;

    fn new(to: tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>) -> Self {
        Chunks {
            to,
            held: Vec::with_capacity(Self::SIZE),
        }
    }

    /// How long a chunk waits for the browser to take it: a download that moves nothing for
    /// that long (a paused download, a dead link) is cut, and the supervisor's next one runs.
    /// Three minutes: a 2G link drops for a minute and more and comes back (a minute cut a
    /// region's export a supervisor had been downloading for a quarter of an hour).
    const STALL: std::time::Duration = std::time::Duration::from_secs(180);

    fn send(&mut self) -> std::io::Result<()> {
        let chunk = std::mem::replace(&mut self.held, Vec::with_capacity(Self::SIZE));
        Self::hand_on(&self.to, Ok(chunk))
    }

    /// Hands `chunk` (or the error that cuts the download) to the browser's side, waiting at
    /// most `STALL` for room.
    fn hand_on(
        to: &tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>,
        chunk: std::io::Result<Vec<u8>>,
    ) -> std::io::Result<()> {
        use tokio::sync::mpsc::error::TrySendError;
        let mut chunk = chunk;
        let deadline = std::time::Instant::now() + Self::STALL;
        loop {
            match to.try_send(chunk) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(_)) => return Err(std::io::ErrorKind::BrokenPipe.into()),
                Err(TrySendError::Full(_)) if std::time::Instant::now() > deadline => {
                    return Err(std::io::ErrorKind::TimedOut.into());
                }
                Err(TrySendError::Full(again)) => {
                    chunk = again;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
        }
    }
}

impl std::io::Write for Chunks {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.held.extend_from_slice(bytes);
        if self.held.len() >= Self::SIZE {
            self.send()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.held.is_empty() {
            true => Ok(()),
            false => self.send(),
        }
    }
}

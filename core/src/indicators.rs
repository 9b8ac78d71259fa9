//! Monitoring indicators (ILO CLMS, ICI CLMRS) computed from index rows: a device counts its own
//! records, the hub everything it holds, with the same code.
//!
//! Children are counted by the day they were identified (merged duplicates left out); their
//! workflow counts are cumulative stages reached by now: a withdrawn child was also referred
//! and received services. Visits are counted by the day they started.
//!
//! For reports shared beyond the team, `Indicators::shared` shows every count under 5 (zero
//! included) as "<5" (`Cell`), so that a small group of children cannot be singled out.

use crate::error::Result;
use crate::model::{AreaFilter, ForcedLabourIndicator, Visit};
use crate::store::Store;
use crate::store::index::Filter;
use chrono::{DateTime, NaiveDate};
use rusqlite::types::Value as Sql;
use serde::{Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Which records to count: an area, and a period `[from, until)` (either end open).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndicatorFilter {
    pub area: Option<AreaFilter>,
    pub from: Option<NaiveDate>,
    pub until: Option<NaiveDate>,
}

/// Counts of children, by the stage of the monitoring cycle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ChildCounts {
    pub identified: u64,
    /// Classified child labour, hazardous child labour or worst form suspected.
    pub in_child_labour: u64,
    /// Classified hazardous child labour.
    pub in_hazardous_work: u64,
    pub worst_form_suspected: u64,
    /// Reached referral (referred or any later stage).
    pub referred: u64,
    /// Reached services (receiving services or any later stage).
    pub receiving_services: u64,
    /// Verified withdrawn or prevented (closed included).
    pub withdrawn_or_prevented: u64,
}

impl ChildCounts {
    fn add(&mut self, outcome: Option<&str>, status: &str) {
        self.identified += 1;
        match outcome {
            Some("child_labour") => self.in_child_labour += 1,
            Some("hazardous_child_labour") => {
                self.in_child_labour += 1;
                self.in_hazardous_work += 1;
            }
            Some("worst_form_suspected") => {
                self.in_child_labour += 1;
                self.worst_form_suspected += 1;
            }
            _ => {}
        }
        let stage = match status {
            "referred" => 1,
            "receiving_services" => 2,
            "withdrawn" | "prevented" | "closed" => 3,
            _ => 0,
        };
        self.referred += u64::from(stage >= 1);
        self.receiving_services += u64::from(stage >= 2);
        self.withdrawn_or_prevented += u64::from(stage >= 3);
    }
}

/// The indicators of an area and period.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Indicators {
    pub children: ChildCounts,
    /// `female`, `male`.
    pub by_sex: BTreeMap<String, ChildCounts>,
    /// `under_12`, `12_14`, `15_17` (age when identified), `unknown`.
    pub by_age_band: BTreeMap<String, ChildCounts>,
    /// The sector of the case's workplace; `unknown` without one, or when the workplace is not
    /// on this device (a community monitor's phone holds no workplaces).
    pub by_sector: BTreeMap<String, ChildCounts>,
    pub by_district: BTreeMap<String, ChildCounts>,
    pub by_community: BTreeMap<String, ChildCounts>,
    /// `YYYY-MM` of identification.
    pub by_month: BTreeMap<String, ChildCounts>,
    /// Labour inspection visits.
    pub inspections: u64,
    /// Visits of every kind.
    pub visits: u64,
    /// Distinct workplaces where a visit found a violation: a checklist answer "no", or a
    /// forced-labour indicator.
    pub workplaces_with_violations: u64,
    /// Visits that found at least one forced-labour indicator.
    pub visits_with_forced_labour_indicators: u64,
    /// Per indicator (snake_case code), the visits that found it.
    pub forced_labour_indicators: BTreeMap<String, u64>,
}

/// A count in a shared report: shown, or suppressed when under `Cell::MIN_SHOWN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    Count(u64),
    /// Rendered "<5".
    Suppressed,
}

impl Cell {
    /// The smallest count shown as it is.
    pub const MIN_SHOWN: u64 = 5;

    /// The cell of a count in a shared report.
    pub fn shared(count: u64) -> Cell {
        if count < Self::MIN_SHOWN {
            Cell::Suppressed
        } else {
            Cell::Count(count)
        }
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cell::Count(n) => write!(f, "{n}"),
            Cell::Suppressed => write!(f, "<{}", Cell::MIN_SHOWN),
        }
    }
}

impl Serialize for Cell {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Count(n) => s.serialize_u64(*n),
            Cell::Suppressed => s.collect_str(self),
        }
    }
}

fn suppress(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        J::Number(n) => match n.as_u64() {
            Some(n) => serde_json::to_value(Cell::shared(n)).unwrap_or(J::Null),
            None => J::Number(n),
        },
        J::Object(map) => J::Object(map.into_iter().map(|(k, v)| (k, suppress(v))).collect()),
        J::Array(items) => J::Array(items.into_iter().map(suppress).collect()),
        other => other,
    }
}

impl Indicators {
    /// Every count as JSON, exact: for the team's own use.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Every count as JSON with small-cell suppression: for reports shared beyond the team.
    pub fn shared(&self) -> serde_json::Value {
        suppress(self.to_json())
    }
}

/// Bit `i` set when the visit found `ForcedLabourIndicator::ALL[i]`.
pub(crate) fn forced_labour_mask(visit: &Visit) -> i64 {
    ForcedLabourIndicator::ALL
        .iter()
        .enumerate()
        .filter(|(_, i)| visit.forced_labour.contains_key(i))
        .fold(0, |mask, (bit, _)| mask | (1 << bit))
}

/// A checklist item answered "no", or a forced-labour indicator found.
pub(crate) fn has_violation(visit: &Visit) -> bool {
    !visit.forced_labour.is_empty()
        || visit
            .checklist
            .answers
            .values()
            .any(|a| *a == crate::model::Answer::No)
}

fn indicator_code(i: ForcedLabourIndicator) -> String {
    serde_json::to_value(i)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn midnight_ms(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis())
        .unwrap_or(0)
}

fn age_band(age: Option<u32>) -> &'static str {
    match age {
        Some(a) if a < 12 => "under_12",
        Some(a) if a < 15 => "12_14",
        Some(a) if a < 18 => "15_17",
        _ => "unknown",
    }
}

impl Store {
    /// The indicators of the records this store holds in `filter`'s area and period.
    pub fn indicators(&self, filter: &IndicatorFilter) -> Result<Indicators> {
        self.indicators_within(filter, None)
    }

    /// `indicators`, counting only what a principal receives (`Store::scoped`).
    pub(crate) fn indicators_within(
        &self,
        filter: &IndicatorFilter,
        scope: Option<&crate::sync::Scope>,
    ) -> Result<Indicators> {
        let mut out = Indicators::default();

        let mut f = Filter::default();
        f.area("c", &filter.area);
        f.within("c", crate::model::RecordKind::ChildCase, scope);
        f.add("c.merged = ?", Sql::Integer(0));
        if let Some(d) = filter.from {
            f.add("c.identified_ms >= ?", Sql::Integer(midnight_ms(d)));
        }
        if let Some(d) = filter.until {
            f.add("c.identified_ms < ?", Sql::Integer(midnight_ms(d)));
        }
        let sql = format!(
            "SELECT c.sex, c.age, c.status, c.classification, c.identified_ms, c.district,
                    c.community, w.sector
             FROM child_index c
             LEFT JOIN records wr ON wr.id = c.workplace_id
             LEFT JOIN workplace_index w ON w.record = wr.rowid
             {}",
            f.sql()
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(f.params))?;
        while let Some(row) = rows.next()? {
            let sex: String = row.get(0)?;
            let age: Option<u32> = row.get(1)?;
            let status: String = row.get(2)?;
            let outcome: Option<String> = row.get(3)?;
            let month = DateTime::from_timestamp_millis(row.get(4)?)
                .map(|t| t.format("%Y-%m").to_string())
                .unwrap_or_default();
            let district: String = row.get(5)?;
            let community: String = row.get(6)?;
            let sector: String = row
                .get::<_, Option<String>>(7)?
                .unwrap_or_else(|| "unknown".into());
            let outcome = outcome.as_deref();
            out.children.add(outcome, &status);
            for (map, key) in [
                (&mut out.by_sex, sex),
                (&mut out.by_age_band, age_band(age).to_string()),
                (&mut out.by_sector, sector),
                (&mut out.by_district, district),
                (&mut out.by_community, community),
                (&mut out.by_month, month),
            ] {
                map.entry(key).or_default().add(outcome, &status);
            }
        }

        let mut f = Filter::default();
        f.area("v", &filter.area);
        f.within("v", crate::model::RecordKind::Visit, scope);
        if let Some(d) = filter.from {
            f.add("v.started_ms >= ?", Sql::Integer(midnight_ms(d)));
        }
        if let Some(d) = filter.until {
            f.add("v.started_ms < ?", Sql::Integer(midnight_ms(d)));
        }
        let sql = format!(
            "SELECT v.kind, v.workplace_id, v.fl_mask, v.violation FROM visit_index v {}",
            f.sql()
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(f.params))?;
        let mut violating: BTreeSet<Vec<u8>> = BTreeSet::new();
        while let Some(row) = rows.next()? {
            let kind: String = row.get(0)?;
            let workplace: Vec<u8> = row.get(1)?;
            let mask: i64 = row.get(2)?;
            let violation: bool = row.get(3)?;
            out.visits += 1;
            if kind == "labour_inspection" {
                out.inspections += 1;
            }
            if violation {
                violating.insert(workplace);
            }
            if mask != 0 {
                out.visits_with_forced_labour_indicators += 1;
                for (bit, indicator) in ForcedLabourIndicator::ALL.iter().enumerate() {
                    if mask & (1 << bit) != 0 {
                        *out.forced_labour_indicators
                            .entry(indicator_code(*indicator))
                            .or_default() += 1;
                    }
                }
            }
        }
        out.workplaces_with_violations = violating.len() as u64;
        Ok(out)
    }
}

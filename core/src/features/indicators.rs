//! Monitoring indicators (ILO CLMS, ICI CLMRS) computed from index rows: a device counts its own
//! records, the hub everything it holds, with the same code.
//!
//! Children are counted by the day they were identified (merged duplicates left out); their
//! workflow counts are cumulative stages reached by now: a withdrawn child was also referred
//! and received services. Visits are counted by the day they started.
//!
//! For reports shared beyond the team, `Indicators::shared` shows every count under 5 (zero
//! included) as "<5" (`Cell`), so that a small group of children cannot be singled out.

use crate::domain::area::AreaFilter;
use crate::domain::codes::{CaseStatus, ClassificationOutcome, VisitKind};
use crate::domain::derived::{age_band, indicators_in_mask};
use crate::domain::rights::Scope;
use crate::error::Result;
use crate::store::{Scoped, Store, queries};
use chrono::{DateTime, NaiveDate};
use serde::{Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Which records to count: an area, and a period `[from, until)` (either end open; apps name
/// them `from_date` and `until_date`). Children count by the day they were identified, visits
/// by the day they started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct IndicatorFilter {
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub area: Option<AreaFilter>,
    #[cfg_attr(feature = "uniffi", uniffi(default = None, name = "from_date"))]
    pub from: Option<NaiveDate>,
    #[cfg_attr(feature = "uniffi", uniffi(default = None, name = "until_date"))]
    pub until: Option<NaiveDate>,
}

/// Counts of children, by the stage of the monitoring cycle (cumulative: a withdrawn child was
/// also referred and received services).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct ChildCounts {
    pub identified: i64,
    /// Classified child labour, hazardous child labour or worst form suspected.
    pub in_child_labour: i64,
    /// Classified hazardous child labour.
    pub in_hazardous_work: i64,
    pub worst_form_suspected: i64,
    /// Reached referral (referred or any later stage).
    pub referred: i64,
    /// Reached services (receiving services or any later stage).
    pub receiving_services: i64,
    /// Verified withdrawn or prevented (closed included).
    pub withdrawn_or_prevented: i64,
}

impl ChildCounts {
    fn add(&mut self, outcome: Option<ClassificationOutcome>, status: Option<CaseStatus>) {
        use ClassificationOutcome::*;
        self.identified += 1;
        match outcome {
            Some(ChildLabour) => self.in_child_labour += 1,
            Some(HazardousChildLabour) => {
                self.in_child_labour += 1;
                self.in_hazardous_work += 1;
            }
            Some(WorstFormSuspected) => {
                self.in_child_labour += 1;
                self.worst_form_suspected += 1;
            }
            Some(NotChildLabour) | None => {}
        }
        let stage = match status {
            Some(CaseStatus::Referred) => 1,
            Some(CaseStatus::ReceivingServices) => 2,
            Some(CaseStatus::Withdrawn | CaseStatus::Prevented | CaseStatus::Closed) => 3,
            Some(CaseStatus::Identified) | None => 0,
        };
        self.referred += i64::from(stage >= 1);
        self.receiving_services += i64::from(stage >= 2);
        self.withdrawn_or_prevented += i64::from(stage >= 3);
    }
}

/// The indicators of an area and period, exact: for the team's own use (`shared` for reports
/// shared beyond the team).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
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
    pub inspections: i64,
    /// Visits of every kind.
    pub visits: i64,
    /// Distinct workplaces where a visit found a violation: a checklist answer "no", or a
    /// forced-labour indicator.
    pub workplaces_with_violations: i64,
    /// Visits that found at least one forced-labour indicator.
    pub visits_with_forced_labour_indicators: i64,
    /// Per indicator (snake_case code), the visits that found it.
    pub forced_labour_indicators: BTreeMap<String, i64>,
}

/// A count in a shared report: shown, or suppressed when under `Cell::MIN_SHOWN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    Count(i64),
    /// Rendered "<5".
    Suppressed,
}

impl Cell {
    /// The smallest count shown as it is.
    pub const MIN_SHOWN: u64 = 5;

    /// The cell of a count in a shared report (a negative count, which no indicator has, is
    /// suppressed too).
    pub fn shared(count: i64) -> Cell {
        if count < Self::MIN_SHOWN as i64 {
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
            Cell::Count(n) => s.serialize_i64(*n),
            Cell::Suppressed => s.collect_str(self),
        }
    }
}

fn suppress(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        J::Number(n) => match n.as_i64() {
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

impl Store {
    /// The indicators of the records this store holds in `filter`'s area and period.
    pub fn indicators(&self, filter: &IndicatorFilter) -> Result<Indicators> {
        self.indicators_within(filter, None)
    }

    /// `indicators`, counting only what `scope` receives.
    fn indicators_within(
        &self,
        filter: &IndicatorFilter,
        scope: Option<&Scope>,
    ) -> Result<Indicators> {
        let (area, from, until) = (&filter.area, filter.from, filter.until);
        let mut out = Indicators::default();
        for row in queries::child_rows(&self.conn, area, from, until, scope)? {
            let month = DateTime::from_timestamp_millis(row.identified_ms)
                .map(|t| t.format("%Y-%m").to_string())
                .unwrap_or_default();
            let outcome = row.classification;
            let status = Some(row.status);
            out.children.add(outcome, status);
            for (map, key) in [
                (&mut out.by_sex, row.sex.as_str().to_string()),
                (&mut out.by_age_band, age_band(row.age).to_string()),
                (
                    &mut out.by_sector,
                    row.sector.unwrap_or_else(|| "unknown".into()),
                ),
                (&mut out.by_district, row.district),
                (&mut out.by_community, row.community),
                (&mut out.by_month, month),
            ] {
                map.entry(key).or_default().add(outcome, status);
            }
        }
        let mut violating: BTreeSet<Vec<u8>> = BTreeSet::new();
        for row in queries::visit_rows(&self.conn, area, from, until, scope)? {
            out.visits += 1;
            if row.kind == VisitKind::LabourInspection {
                out.inspections += 1;
            }
            if row.violation {
                violating.insert(row.workplace_id);
            }
            if row.forced_labour != 0 {
                out.visits_with_forced_labour_indicators += 1;
                for indicator in indicators_in_mask(row.forced_labour) {
                    *out.forced_labour_indicators
                        .entry(indicator.as_str().to_string())
                        .or_default() += 1;
                }
            }
        }
        out.workplaces_with_violations = violating.len() as i64;
        Ok(out)
    }
}

impl Scoped<'_> {
    /// `Store::indicators`, counting only what the principal receives.
    pub fn indicators(&self, filter: &IndicatorFilter) -> Result<Indicators> {
        self.store.indicators_within(filter, Some(&self.who))
    }
}

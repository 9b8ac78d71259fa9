//! Monitoring indicators (ILO CLMS, ICI CLMRS) computed from index rows: a device counts its own
//! records, the hub everything it holds, with the same code.
//!
//! Children are counted by the day they were identified (merged duplicates left out); their
//! workflow counts are cumulative stages reached by now: a withdrawn child was also referred
//! and received services, and a child reopened since (found working again) stays counted as
//! reached (`derived::stage_reached`): a quarter already reported does not change. Visits are counted by the day they started on their phone's clock
//! (the day `started_at` names with its offset, as exports show it).
//!
//! For reports shared beyond the team, `Indicators::shared` withholds every count under 5 (zero
//! included), and, so that none can be worked out by subtraction, enough other counts of the
//! same table (complementary suppression, see `Indicators::shared`). Every withheld count shows
//! the same mark, "x" (`Cell::Suppressed`): a small count and one withheld to protect it cannot
//! be told apart.

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
/// by the day they started on their phone's clock.
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
    /// among the records the reader receives (another district's, not on this phone).
    pub by_sector: BTreeMap<String, ChildCounts>,
    pub by_district: BTreeMap<String, ChildCounts>,
    pub by_community: BTreeMap<String, ChildCounts>,
    /// The district of each community of `by_community` (a community's children are counted in
    /// its district's too).
    pub community_districts: BTreeMap<String, String>,
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

/// A count in a shared report: shown, or withheld.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    Count(i64),
    /// Withheld: a count under `Cell::MIN_SHOWN`, or one withheld so that such a count cannot
    /// be worked out from a total and the counts beside it. Rendered "x" either way, so that a
    /// reader cannot tell which (nor bound the count).
    Suppressed,
}

impl Cell {
    /// The smallest count that may be shown.
    pub const MIN_SHOWN: u64 = 5;

    /// The mark of a withheld count.
    pub const MARK: &'static str = "x";

    /// A count on its own in a shared report: withheld under `MIN_SHOWN` (a negative count,
    /// which no indicator has, is withheld too). A count beside its total and other counts is
    /// shown as `Indicators::shared_cells` says: this alone can be undone by subtraction.
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
            Cell::Suppressed => f.write_str(Cell::MARK),
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

/// `ChildCounts` as a shared report shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SharedChildCounts {
    pub identified: Cell,
    pub in_child_labour: Cell,
    pub in_hazardous_work: Cell,
    pub worst_form_suspected: Cell,
    pub referred: Cell,
    pub receiving_services: Cell,
    pub withdrawn_or_prevented: Cell,
}

/// `Indicators` as a shared report shows them (`Indicators::shared_cells`): the same fields,
/// each count a `Cell`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SharedIndicators {
    pub children: SharedChildCounts,
    pub by_sex: BTreeMap<String, SharedChildCounts>,
    pub by_age_band: BTreeMap<String, SharedChildCounts>,
    pub by_sector: BTreeMap<String, SharedChildCounts>,
    pub by_district: BTreeMap<String, SharedChildCounts>,
    pub by_community: BTreeMap<String, SharedChildCounts>,
    pub community_districts: BTreeMap<String, String>,
    pub by_month: BTreeMap<String, SharedChildCounts>,
    pub inspections: Cell,
    pub visits: Cell,
    pub workplaces_with_violations: Cell,
    pub visits_with_forced_labour_indicators: Cell,
    pub forced_labour_indicators: BTreeMap<String, Cell>,
}

/// The measures of `ChildCounts` (`MEASURES`), in this order.
const MEASURES: usize = 7;
const IDENTIFIED: usize = 0;
const CHILD_LABOUR: usize = 1;
const HAZARDOUS: usize = 2;
const WORST_FORM: usize = 3;
const REFERRED: usize = 4;
const SERVICES: usize = 5;
const WITHDRAWN: usize = 6;

impl ChildCounts {
    /// The counts in the order of their fields: identified, in child labour, in hazardous
    /// work, worst form suspected, referred, receiving services, withdrawn or prevented.
    pub fn measures(&self) -> [i64; MEASURES] {
        [
            self.identified,
            self.in_child_labour,
            self.in_hazardous_work,
            self.worst_form_suspected,
            self.referred,
            self.receiving_services,
            self.withdrawn_or_prevented,
        ]
    }
}

/// What a reader of a shared table knows ties its counts together: each total is the sum of
/// its parts, and within a row some counts are at most others.
struct Table {
    values: Vec<i64>,
    shown: Vec<bool>,
    /// `(total, parts)`: total = sum of parts.
    sums: Vec<(usize, Vec<usize>)>,
    /// `(parts, bound)`: sum of parts <= bound.
    bounds: Vec<(Vec<usize>, usize)>,
}

/// Larger than any count, and than any sum of counts.
const UNBOUNDED: i64 = i64::MAX / 4;

impl Table {
    /// Adds a row of counts (its cells at `first`, the first returned, to `first + 6`, in
    /// the order of `MEASURES`) and the bounds that hold within it.
    fn add_row(&mut self, counts: &ChildCounts) -> usize {
        let first = self.values.len();
        for n in counts.measures() {
            self.values.push(n);
            self.shown.push(n >= Cell::MIN_SHOWN as i64);
        }
        let at = |m: usize| first + m;
        self.bounds.extend([
            (vec![at(HAZARDOUS), at(WORST_FORM)], at(CHILD_LABOUR)),
            (vec![at(CHILD_LABOUR)], at(IDENTIFIED)),
            (vec![at(REFERRED)], at(IDENTIFIED)),
            (vec![at(SERVICES)], at(REFERRED)),
            (vec![at(WITHDRAWN)], at(SERVICES)),
        ]);
        first
    }

    /// `total` row = the sum of the `parts` rows, measure by measure.
    fn add_sum(&mut self, total: usize, parts: &[usize]) {
        for m in 0..MEASURES {
            self.sums
                .push((total + m, parts.iter().map(|p| p + m).collect()));
        }
    }

    /// Withholds the smallest shown cell of `cells` (the first of equals); false if none is
    /// shown.
    fn withhold_smallest(&mut self, cells: impl IntoIterator<Item = usize>) -> bool {
        let smallest = cells
            .into_iter()
            .filter(|c| self.shown[*c])
            .min_by_key(|c| (self.values[*c], *c));
        if let Some(c) = smallest {
            self.shown[c] = false;
        }
        smallest.is_some()
    }

    /// One pass of complementary suppression over the sums whose total is shown: the parts
    /// withheld must hold at least two that are not zero (else one of them is the total less
    /// the parts shown) and add up to `MIN_SHOWN` or more (else they single out a small
    /// group); while they do not, the smallest part shown is withheld with them (the total
    /// when no part is left). True if anything was withheld.
    fn complete_sums(&mut self) -> bool {
        let mut changed = false;
        for i in 0..self.sums.len() {
            let (total, parts) = self.sums[i].clone();
            if !self.shown[total] {
                continue;
            }
            loop {
                let withheld: Vec<usize> =
                    parts.iter().copied().filter(|p| !self.shown[*p]).collect();
                let sum: i64 = withheld.iter().map(|p| self.values[*p]).sum();
                let nonzero = withheld.iter().filter(|p| self.values[**p] != 0).count();
                if withheld.is_empty() || (nonzero >= 2 && sum >= Cell::MIN_SHOWN as i64) {
                    break;
                }
                changed = true;
                if !self.withhold_smallest(parts.iter().copied()) {
                    self.shown[total] = false;
                    break;
                }
            }
        }
        changed
    }

    /// What a reader can bound each cell to from the cells shown, the sums and the bounds
    /// (propagated until nothing narrows).
    fn intervals(&self) -> Vec<(i64, i64)> {
        let mut iv: Vec<(i64, i64)> = self
            .values
            .iter()
            .zip(&self.shown)
            .map(|(v, shown)| if *shown { (*v, *v) } else { (0, UNBOUNDED) })
            .collect();
        let sum_lo = |iv: &[(i64, i64)], cells: &[usize], except: usize| -> i64 {
            cells
                .iter()
                .filter(|c| **c != except)
                .map(|c| iv[*c].0)
                .fold(0i64, |a, b| a.saturating_add(b))
                .min(UNBOUNDED)
        };
        let sum_hi = |iv: &[(i64, i64)], cells: &[usize], except: usize| -> i64 {
            cells
                .iter()
                .filter(|c| **c != except)
                .map(|c| iv[*c].1)
                .fold(0i64, |a, b| a.saturating_add(b))
                .min(UNBOUNDED)
        };
        // Each round narrows an interval or stops; the rounds are bounded all the same.
        for _ in 0..64 {
            let before = iv.clone();
            for (total, parts) in &self.sums {
                let lo = sum_lo(&iv, parts, usize::MAX);
                let hi = sum_hi(&iv, parts, usize::MAX);
                let t = &mut iv[*total];
                *t = (t.0.max(lo), t.1.min(hi));
                for p in parts {
                    let (t_lo, t_hi) = iv[*total];
                    let others_lo = sum_lo(&iv, parts, *p);
                    let others_hi = sum_hi(&iv, parts, *p);
                    let lo = if t_lo >= UNBOUNDED || others_hi >= UNBOUNDED {
                        0
                    } else {
                        t_lo - others_hi
                    };
                    let hi = if t_hi >= UNBOUNDED {
                        UNBOUNDED
                    } else {
                        t_hi - others_lo
                    };
                    let c = &mut iv[*p];
                    *c = (c.0.max(lo), c.1.min(hi));
                }
            }
            for (parts, bound) in &self.bounds {
                let lo = sum_lo(&iv, parts, usize::MAX);
                let b = &mut iv[*bound];
                b.0 = b.0.max(lo);
                for p in parts {
                    let b_hi = iv[*bound].1;
                    if b_hi < UNBOUNDED {
                        let hi = b_hi - sum_lo(&iv, parts, *p);
                        let c = &mut iv[*p];
                        c.1 = c.1.min(hi);
                    }
                }
            }
            if iv == before {
                break;
            }
        }
        iv
    }

    /// Withholds more wherever a withheld count of children can still be worked out exactly
    /// (through several sums, or the bounds within a row): the smallest shown cell tied to it by a sum
    /// or a bound goes too (or, when none is, tied to it through other withheld cells). True
    /// if anything was withheld.
    fn close_leaks(&mut self) -> bool {
        let iv = self.intervals();
        for (cell, (lo, hi)) in iv.into_iter().enumerate() {
            // A count worked out to be zero singles no child out (hazardous work that is all
            // the child labour says there is no worst form): only children are protected.
            if self.shown[cell] || lo != hi || lo == 0 {
                continue;
            }
            // The cells tied to `cell`, then those tied to them through withheld cells, until
            // some are shown.
            let mut seen = BTreeSet::from([cell]);
            let mut frontier = vec![cell];
            while !frontier.is_empty() {
                let mut tied: BTreeSet<usize> = BTreeSet::new();
                for c in &frontier {
                    tied.extend(self.tied_to(*c));
                }
                if self.withhold_smallest(tied.iter().copied()) {
                    return true;
                }
                frontier = tied.into_iter().filter(|c| seen.insert(*c)).collect();
            }
        }
        false
    }

    /// The cells in a sum or a bound with `cell`.
    fn tied_to(&self, cell: usize) -> Vec<usize> {
        let mut tied = Vec::new();
        for (total, parts) in &self.sums {
            if *total == cell || parts.contains(&cell) {
                tied.push(*total);
                tied.extend(parts);
            }
        }
        for (parts, bound) in &self.bounds {
            if *bound == cell || parts.contains(&cell) {
                tied.push(*bound);
                tied.extend(parts);
            }
        }
        tied
    }

    fn cell(&self, at: usize) -> Cell {
        if self.shown[at] {
            Cell::Count(self.values[at])
        } else {
            Cell::Suppressed
        }
    }

    fn shared_row(&self, first: usize) -> SharedChildCounts {
        SharedChildCounts {
            identified: self.cell(first + IDENTIFIED),
            in_child_labour: self.cell(first + CHILD_LABOUR),
            in_hazardous_work: self.cell(first + HAZARDOUS),
            worst_form_suspected: self.cell(first + WORST_FORM),
            referred: self.cell(first + REFERRED),
            receiving_services: self.cell(first + SERVICES),
            withdrawn_or_prevented: self.cell(first + WITHDRAWN),
        }
    }
}

impl SharedChildCounts {
    /// Every count shown.
    fn exact(counts: &ChildCounts) -> SharedChildCounts {
        SharedChildCounts {
            identified: Cell::Count(counts.identified),
            in_child_labour: Cell::Count(counts.in_child_labour),
            in_hazardous_work: Cell::Count(counts.in_hazardous_work),
            worst_form_suspected: Cell::Count(counts.worst_form_suspected),
            referred: Cell::Count(counts.referred),
            receiving_services: Cell::Count(counts.receiving_services),
            withdrawn_or_prevented: Cell::Count(counts.withdrawn_or_prevented),
        }
    }
}

impl Indicators {
    /// The indicators in the shape of `shared_cells`, every count shown: for the team's own
    /// use, so that one rendering serves both.
    pub fn exact_cells(&self) -> SharedIndicators {
        let exact = |map: &BTreeMap<String, ChildCounts>| {
            map.iter()
                .map(|(k, c)| (k.clone(), SharedChildCounts::exact(c)))
                .collect()
        };
        SharedIndicators {
            children: SharedChildCounts::exact(&self.children),
            by_sex: exact(&self.by_sex),
            by_age_band: exact(&self.by_age_band),
            by_sector: exact(&self.by_sector),
            by_district: exact(&self.by_district),
            by_community: exact(&self.by_community),
            community_districts: self.community_districts.clone(),
            by_month: exact(&self.by_month),
            inspections: Cell::Count(self.inspections),
            visits: Cell::Count(self.visits),
            workplaces_with_violations: Cell::Count(self.workplaces_with_violations),
            visits_with_forced_labour_indicators: Cell::Count(
                self.visits_with_forced_labour_indicators,
            ),
            forced_labour_indicators: self
                .forced_labour_indicators
                .iter()
                .map(|(k, n)| (k.clone(), Cell::Count(*n)))
                .collect(),
        }
    }

    /// Every count as JSON, exact: for the team's own use.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Every count as JSON with small-cell suppression (`shared_cells`): for reports shared
    /// beyond the team.
    pub fn shared(&self) -> serde_json::Value {
        serde_json::to_value(self.shared_cells()).unwrap_or(serde_json::Value::Null)
    }

    /// The counts a report shared beyond the team shows: the one home of the rule.
    ///
    /// - Every count under 5 is withheld, zero and totals included.
    /// - Complementary suppression: in every breakdown whose total is shown (each measure of
    ///   `by_sex`, `by_age_band`, `by_sector`, `by_district`, `by_community`, `by_month`
    ///   against `children`, and the communities of a district against the district), the
    ///   counts withheld hold at least two that are not zero and add up to at least 5: else
    ///   the smallest count shown goes too, and again, so that none is the total less the
    ///   counts shown (the total goes when no count is left).
    /// - Then, until none can be: a withheld count of one child or more that a reader could
    ///   still work out exactly, from several breakdowns together or from the bounds within a row (hazardous
    ///   work is part of child labour, which is part of the children identified; services
    ///   follow referral, withdrawal follows services), takes the smallest count shown beside
    ///   it.
    /// - Visits and forced-labour indicators are not children: their counts under 5 are
    ///   withheld, each on its own.
    ///
    /// Every withheld count shows the same mark (`Cell::Suppressed`, "x").
    pub fn shared_cells(&self) -> SharedIndicators {
        let mut table = Table {
            values: Vec::new(),
            shown: Vec::new(),
            sums: Vec::new(),
            bounds: Vec::new(),
        };
        let total = table.add_row(&self.children);
        let dimensions = [
            &self.by_sex,
            &self.by_age_band,
            &self.by_sector,
            &self.by_district,
            &self.by_community,
            &self.by_month,
        ];
        let mut rows: Vec<BTreeMap<&str, usize>> = Vec::new();
        for map in dimensions {
            let at: BTreeMap<&str, usize> = map
                .iter()
                .map(|(k, c)| (k.as_str(), table.add_row(c)))
                .collect();
            table.add_sum(total, &at.values().copied().collect::<Vec<_>>());
            rows.push(at);
        }
        let (districts, communities) = (&rows[3], &rows[4]);
        let mut nested: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (community, row) in communities {
            let district = self
                .community_districts
                .get(*community)
                .and_then(|d| districts.get(d.as_str()));
            if let Some(district) = district {
                nested.entry(*district).or_default().push(*row);
            }
        }
        for (district, parts) in &nested {
            table.add_sum(*district, parts);
        }
        while table.complete_sums() || table.close_leaks() {}
        let shared = |map: &BTreeMap<&str, usize>| {
            map.iter()
                .map(|(k, at)| (k.to_string(), table.shared_row(*at)))
                .collect()
        };
        SharedIndicators {
            children: table.shared_row(total),
            by_sex: shared(&rows[0]),
            by_age_band: shared(&rows[1]),
            by_sector: shared(&rows[2]),
            by_district: shared(&rows[3]),
            by_community: shared(&rows[4]),
            community_districts: self.community_districts.clone(),
            by_month: shared(&rows[5]),
            inspections: Cell::shared(self.inspections),
            visits: Cell::shared(self.visits),
            workplaces_with_violations: Cell::shared(self.workplaces_with_violations),
            visits_with_forced_labour_indicators: Cell::shared(
                self.visits_with_forced_labour_indicators,
            ),
            forced_labour_indicators: self
                .forced_labour_indicators
                .iter()
                .map(|(k, n)| (k.clone(), Cell::shared(*n)))
                .collect(),
        }
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
        // A period that holds no day (reversed, or ending where it starts) is a mistake of
        // the asker's, not a period with nothing in it: all zeros would read as a quiet one.
        if let (Some(from), Some(until)) = (from, until)
            && until <= from
        {
            return Err(crate::error::ValidationError::new(
                "until_date",
                "must be after the first day of the period",
            )
            .into());
        }
        let mut out = Indicators::default();
        for row in queries::child_rows(&self.conn, area, from, until, scope)? {
            let month = DateTime::from_timestamp_millis(row.identified_ms)
                .map(|t| t.format("%Y-%m").to_string())
                .unwrap_or_default();
            out.community_districts
                .insert(row.community.clone(), row.district.clone());
            let outcome = row.classification;
            let reached = Some(row.reached);
            out.children.add(outcome, reached);
            for (map, key) in [
                (&mut out.by_sex, row.sex.as_str().to_string()),
                (&mut out.by_age_band, age_band(row.age).to_string()),
                (
                    &mut out.by_sector,
                    row.sector.unwrap_or_else(|| "unknown".into()),
                ),
                (&mut out.by_district, row.district.clone()),
                (&mut out.by_community, row.community.clone()),
                (&mut out.by_month, month),
            ] {
                map.entry(key).or_default().add(outcome, reached);
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

//! The monitoring cycle over a store, as the core computes it: the supervisor's review of
//! visits, urgent alerts, duplicate children, indicators (with small-cell suppression) and
//! exports. The records here and their conversions; the store's methods below.

use crate::error::{Result, VigieError};
use crate::store::VigieStore;
use crate::types::{self, AreaFilter, ChildCase, Page, parse_date, parse_id};
use std::collections::{BTreeMap, HashMap};
use vigie_core::{self as core, CaseStatus, ExportFormat, ExportOptions, RecordKind, Role};

#[uniffi::remote(Enum)]
pub enum ExportFormat {
    Csv,
    Json,
}

/// What an export includes. Personal data (names, dates of birth, coordinates, contacts, free
/// text) is a supervisor's right only.
#[uniffi::remote(Record)]
pub struct ExportOptions {
    #[uniffi(default = false)]
    pub include_personal_data: bool,
}

/// A supervisor's decision on a submitted visit.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum VisitReview {
    Validate,
    /// Back to the visitor for correction, with what to correct (required).
    ReturnToVisitor {
        comment: String,
    },
}

impl From<VisitReview> for core::Review {
    fn from(r: VisitReview) -> Self {
        match r {
            VisitReview::Validate => core::Review::Validate,
            VisitReview::ReturnToVisitor { comment } => core::Review::Return { comment },
        }
    }
}

/// Whether `by` may move a case from `from` to `to` with `transition_case`: returns normally,
/// or raises `NotAllowed` naming the rule (to show only the steps a user may take). Does not
/// block.
#[uniffi::export]
pub fn check_case_transition(from: CaseStatus, to: CaseStatus, by: Role) -> Result<()> {
    Ok(core::check_case_transition(from, to, by)?)
}

/// A count as a report shared beyond the team shows it: the number, or `"<5"` under 5 (zero
/// included), as `indicators_json(shared = true)` does. A negative count is shown `"<5"`. Does
/// not block.
#[uniffi::export]
pub fn shared_count(count: i64) -> String {
    core::Cell::shared(u64::try_from(count).unwrap_or(0)).to_string()
}

// ---------------------------------------------------------------------------------------------
// Alerts

/// How urgent an alert is, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum AlertSeverity {
    /// An open case where a worst form of child labour (C182 art. 3 a-c) is suspected.
    WorstFormSuspected,
    /// An open case classified hazardous child labour.
    HazardousChildLabour,
    /// A visit found one or more of the ILO forced-labour indicators.
    ForcedLabourIndicators,
}

impl From<core::AlertSeverity> for AlertSeverity {
    fn from(s: core::AlertSeverity) -> Self {
        match s {
            core::AlertSeverity::WorstFormSuspected => AlertSeverity::WorstFormSuspected,
            core::AlertSeverity::HazardousChildLabour => AlertSeverity::HazardousChildLabour,
            core::AlertSeverity::ForcedLabourIndicators => AlertSeverity::ForcedLabourIndicators,
        }
    }
}

/// An urgent record: a child case (`kind` CHILD_CASE) or a visit (VISIT).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Alert {
    pub id: String,
    pub kind: RecordKind,
    pub severity: AlertSeverity,
    /// When the child was identified (midnight UTC of that day) or the visit started (RFC 3339,
    /// UTC).
    pub at: String,
    pub district: String,
    pub community: String,
}

impl From<core::Alert> for Alert {
    fn from(a: core::Alert) -> Self {
        Alert {
            id: a.id.to_string(),
            kind: a.kind,
            severity: a.severity.into(),
            at: types::format_utc(a.at),
            district: a.district,
            community: a.community,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Duplicates

/// A case that may be the same child, and how alike the names are (0 to 1).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct DuplicateCandidate {
    pub case_id: String,
    pub similarity: f64,
}

/// A merge's result: the case kept (with the duplicate in `merged_from`, and its referrals and
/// follow-ups) and the duplicate (with `merged_into`), both kept whole.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct MergedCases {
    pub kept: ChildCase,
    pub duplicate: ChildCase,
}

// ---------------------------------------------------------------------------------------------
// Indicators

/// Which records to count: an area, and a period from `from_date` (included) to `until_date`
/// (excluded), YYYY-MM-DD, either end open. Children count by the day they were identified,
/// visits by the day they started.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct IndicatorFilter {
    #[uniffi(default = None)]
    pub area: Option<AreaFilter>,
    #[uniffi(default = None)]
    pub from_date: Option<String>,
    #[uniffi(default = None)]
    pub until_date: Option<String>,
}

impl IndicatorFilter {
    fn into_core(self) -> Result<core::IndicatorFilter> {
        Ok(core::IndicatorFilter {
            area: self.area.map(Into::into),
            from: self
                .from_date
                .map(|d| parse_date("from_date", &d))
                .transpose()?,
            until: self
                .until_date
                .map(|d| parse_date("until_date", &d))
                .transpose()?,
        })
    }
}

/// Children by the stage of the monitoring cycle they reached (cumulative: a withdrawn child
/// was also referred and received services).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, uniffi::Record)]
pub struct ChildCounts {
    pub identified: i64,
    /// Classified child labour, hazardous child labour or worst form suspected.
    pub in_child_labour: i64,
    pub in_hazardous_work: i64,
    pub worst_form_suspected: i64,
    pub referred: i64,
    pub receiving_services: i64,
    /// Verified withdrawn or prevented (closed included).
    pub withdrawn_or_prevented: i64,
}

fn long(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl From<core::ChildCounts> for ChildCounts {
    fn from(c: core::ChildCounts) -> Self {
        ChildCounts {
            identified: long(c.identified),
            in_child_labour: long(c.in_child_labour),
            in_hazardous_work: long(c.in_hazardous_work),
            worst_form_suspected: long(c.worst_form_suspected),
            referred: long(c.referred),
            receiving_services: long(c.receiving_services),
            withdrawn_or_prevented: long(c.withdrawn_or_prevented),
        }
    }
}

/// The indicators of an area and period, exact: for the team's own use. For a report shared
/// beyond the team, show each count with `shared_count`, or take `indicators_json(shared =
/// true)`, where counts under 5 are `"<5"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct Indicators {
    pub children: ChildCounts,
    /// Keys `female`, `male`.
    pub by_sex: HashMap<String, ChildCounts>,
    /// Keys `under_12`, `12_14`, `15_17` (age when identified), `unknown`.
    pub by_age_band: HashMap<String, ChildCounts>,
    /// The sector of the case's workplace; `unknown` without one or when the workplace is not
    /// on this device.
    pub by_sector: HashMap<String, ChildCounts>,
    pub by_district: HashMap<String, ChildCounts>,
    pub by_community: HashMap<String, ChildCounts>,
    /// `YYYY-MM` of identification.
    pub by_month: HashMap<String, ChildCounts>,
    /// Labour inspection visits.
    pub inspections: i64,
    /// Visits of every kind.
    pub visits: i64,
    /// Distinct workplaces where a visit found a violation (a checklist answer "no", or a
    /// forced-labour indicator).
    pub workplaces_with_violations: i64,
    pub visits_with_forced_labour_indicators: i64,
    /// Per indicator (snake_case code, e.g. `isolation`), the visits that found it.
    pub forced_labour_indicators: HashMap<String, i64>,
}

fn counts_by(map: BTreeMap<String, core::ChildCounts>) -> HashMap<String, ChildCounts> {
    map.into_iter().map(|(k, v)| (k, v.into())).collect()
}

impl From<core::Indicators> for Indicators {
    fn from(i: core::Indicators) -> Self {
        Indicators {
            children: i.children.into(),
            by_sex: counts_by(i.by_sex),
            by_age_band: counts_by(i.by_age_band),
            by_sector: counts_by(i.by_sector),
            by_district: counts_by(i.by_district),
            by_community: counts_by(i.by_community),
            by_month: counts_by(i.by_month),
            inspections: long(i.inspections),
            visits: long(i.visits),
            workplaces_with_violations: long(i.workplaces_with_violations),
            visits_with_forced_labour_indicators: long(i.visits_with_forced_labour_indicators),
            forced_labour_indicators: i
                .forced_labour_indicators
                .into_iter()
                .map(|(k, v)| (k, long(v)))
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The store's methods

#[uniffi::export]
impl VigieStore {
    /// Urgent alerts in an area (or everywhere): worst forms first, then hazardous child
    /// labour, then visits with forced-labour indicators; the most recent first within each.
    /// Closed, remediated and merged cases raise none.
    pub fn alerts(&self, area: Option<AreaFilter>, page: Page) -> Result<Vec<Alert>> {
        let page = page.into_core()?;
        let area = area.map(Into::into);
        self.with_store(|s| Ok(s.alerts(area, page)?.into_iter().map(Into::into).collect()))
    }

    /// Cases that may be the same child as `case_id` (same community, birth years at most one
    /// apart, similar names ignoring accents and word order), best first; merged duplicates
    /// left out.
    pub fn duplicate_candidates(&self, case_id: String) -> Result<Vec<DuplicateCandidate>> {
        let id = parse_id("case_id", &case_id)?;
        self.with_store(|s| {
            Ok(s.duplicate_candidates(id)?
                .into_iter()
                .map(|(id, similarity)| DuplicateCandidate {
                    case_id: id.to_string(),
                    similarity,
                })
                .collect())
        })
    }

    /// Merges the duplicate registration into the case kept (a supervisor's decision), in one
    /// transaction; both cases and their histories are kept. Merging the same pair again
    /// changes nothing.
    pub fn merge_cases(&self, keep_id: String, duplicate_id: String) -> Result<MergedCases> {
        let keep = parse_id("keep_id", &keep_id)?;
        let duplicate = parse_id("duplicate_id", &duplicate_id)?;
        let (kept, dup) = self.with_store(|s| Ok(s.merge_cases(keep, duplicate)?))?;
        self.changed_locally(&[keep, duplicate], RecordKind::ChildCase);
        Ok(MergedCases {
            kept: kept.into(),
            duplicate: dup.into(),
        })
    }

    /// The indicators of the records this store holds in the filter's area and period, exact.
    pub fn indicators(&self, filter: IndicatorFilter) -> Result<Indicators> {
        let filter = filter.into_core()?;
        self.with_store(|s| Ok(s.indicators(&filter)?.into()))
    }

    /// The indicators as JSON (the field names of `Indicators`, in snake_case). `shared`: with
    /// every count under 5 shown as the string `"<5"`, for reports shared beyond the team.
    pub fn indicators_json(&self, filter: IndicatorFilter, shared: bool) -> Result<String> {
        let filter = filter.into_core()?;
        let indicators = self.with_store(|s| Ok(s.indicators(&filter)?))?;
        let json = if shared {
            indicators.shared()
        } else {
            indicators.to_json()
        };
        Ok(json.to_string())
    }

    /// Writes the store's records into `dir` (created if needed) for analysis, one file per
    /// table (`workplaces`, `visits`, `child_cases`, `referrals`, `follow_ups`; `.csv` with a
    /// header row, or `.json`), and returns their paths. Pseudonymised unless `options` asks for
    /// personal data, which only a supervisor may: anyone else is `NotAllowed`.
    pub fn export_to_dir(
        &self,
        dir: String,
        format: ExportFormat,
        options: ExportOptions,
    ) -> Result<Vec<String>> {
        if dir.trim().is_empty() {
            return Err(VigieError::validation("dir", "must not be empty"));
        }
        let paths = self
            .with_store(|s| Ok(s.export_to_dir(std::path::Path::new(&dir), format, options)?))?;
        Ok(paths
            .into_iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect())
    }
}

//! The monitoring cycle over a store, as the core computes it: duplicate children, indicators
//! (with small-cell suppression) and exports; and the workflow checks an app asks before it
//! shows a step. The records are the core's (`Indicators`, `DuplicateCandidate`, ...).

use crate::error::{Result, VigieError};
use crate::input;
use crate::listeners::ChangeSource;
use crate::store::VigieStore;
use vigie_core::{
    CaseStatus, Cell, ChildCase, DuplicateCandidate, ExportFormat, ExportOptions, IndicatorFilter,
    Indicators, RecordKind, Role,
};

/// Whether `by` may move a case from `from` to `to` with `transition_case`: returns normally,
/// or raises `NotAllowed` naming the rule (to show only the steps a user may take). Does not
/// block.
#[uniffi::export]
pub fn check_case_transition(from: CaseStatus, to: CaseStatus, by: Role) -> Result<()> {
    Ok(vigie_core::check_case_transition(from, to, by)?)
}

/// One lone count as a report shared beyond the team shows it: the number, or `"x"` under 5
/// (zero included; a negative count too). A table with totals needs more than this
/// (`indicators_json(shared = true)` also withholds counts that would give a withheld one away
/// by subtraction). Does not block.
#[uniffi::export]
pub fn shared_count(count: i64) -> String {
    Cell::shared(count).to_string()
}

/// Why a case is classified as it is (`classification.reason`, the core's words) in `language`
/// (`fr` or `en`; another code reads French), as the hub's console says it; for a case
/// classified by a value in conflict, the fields and values that decided it follow. Does not
/// block.
#[uniffi::export]
pub fn classification_reason_in(reason: String, language: String) -> String {
    vigie_core::messages::classification_reason(&reason, &language)
}

/// A merge's result: the case kept (with the duplicate in `merged_from`, and its referrals and
/// follow-ups) and the duplicate (with `merged_into`), both kept whole.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct MergedCases {
    pub kept: ChildCase,
    pub duplicate: ChildCase,
}

#[uniffi::export]
impl VigieStore {
    /// Cases that may be the same child as `case_id` (same community, birth years at most one
    /// apart, similar names ignoring accents and word order), best first; merged duplicates
    /// left out.
    pub fn duplicate_candidates(&self, case_id: String) -> Result<Vec<DuplicateCandidate>> {
        let id = input::id("case_id", &case_id)?;
        self.with_store(|s| Ok(s.duplicate_candidates(id)?))
    }

    /// Merges the duplicate registration into the case kept (a supervisor's decision), in one
    /// transaction; both cases and their histories are kept. Merging the same pair again
    /// changes nothing.
    pub fn merge_cases(&self, keep_id: String, duplicate_id: String) -> Result<MergedCases> {
        let keep = input::id("keep_id", &keep_id)?;
        let duplicate = input::id("duplicate_id", &duplicate_id)?;
        let (kept, duplicate_case) = self.with_store(|s| Ok(s.merge_cases(keep, duplicate)?))?;
        self.changed(
            &[keep, duplicate],
            RecordKind::ChildCase,
            ChangeSource::Local,
        );
        Ok(MergedCases {
            kept,
            duplicate: duplicate_case,
        })
    }

    /// The indicators of the records this store holds in the filter's area and period, exact.
    #[uniffi::method(default(filter))]
    pub fn indicators(&self, filter: IndicatorFilter) -> Result<Indicators> {
        let filter = input::indicator_filter(filter)?;
        self.with_store(|s| Ok(s.indicators(&filter)?))
    }

    /// The indicators as JSON (the field names of `Indicators`, in snake_case). `shared`: for
    /// reports shared beyond the team, every count under 5, and every count that would give
    /// one away by subtraction from a total, shown as the string `"x"`.
    #[uniffi::method(default(shared = false))]
    pub fn indicators_json(&self, filter: IndicatorFilter, shared: bool) -> Result<String> {
        let indicators = self.indicators(filter)?;
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
    #[uniffi::method(default(options))]
    pub fn export_to_dir(
        &self,
        dir: String,
        format: ExportFormat,
        options: ExportOptions,
    ) -> Result<Vec<String>> {
        if dir.trim().is_empty() {
            return Err(VigieError::validation("dir", "must not be empty"));
        }
        let dir = std::path::Path::new(&dir);
        let paths = self.with_store(|s| Ok(s.export_to_dir(dir, format, options)?))?;
        Ok(paths
            .into_iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect())
    }
}

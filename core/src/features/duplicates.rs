//! The same child registered twice (typically by two monitors while offline): candidates are
//! found from index rows — same community, birth year within one year, similar names ignoring
//! case, accents and word order — and a supervisor merges a pair.
//!
//! A merge keeps both documents and their histories. The duplicate gets `merged_into` (the
//! kept case) and keeps its status: a merge is not a step of the child's situation, so it is a
//! flag rather than `closed` (closing would count it as a remediated case in indicators, and
//! the state machine only closes withdrawn or prevented cases). Merged duplicates are left out
//! of alerts, due lists, indicators and duplicate candidates, and refuse workflow steps. The
//! kept case gets the duplicate's id in `merged_from` and copies of its referrals and
//! follow-ups (under the same keys, so a second merge, or the same merge made on two devices,
//! adds nothing twice). Both writes are one transaction. The same pair merged offline in
//! opposite directions leaves both cases in view (`ChildCase::is_merged_duplicate`) until a
//! supervisor merges them again.

use crate::domain::codes::RecordKind;
use crate::domain::derived::{NAME_SIMILARITY_THRESHOLD, birth_year, fold_name, folded_similarity};
use crate::domain::records::ChildCase;
use crate::domain::reference::ReferenceData;
use crate::domain::rights::{self, Scope, Step};
use crate::error::{Error, Result};
use crate::store::{Scoped, Store, queries};
use uuid::Uuid;

/// A case that may be the same child, and how alike the names are (0 to 1).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct DuplicateCandidate {
    pub case_id: Uuid,
    pub similarity: f64,
}

impl Store {
    /// Cases that may be the same child as `case_id`: same community, birth years at most one
    /// apart (or unknown), names at least `NAME_SIMILARITY_THRESHOLD` alike; best first, merged
    /// duplicates left out.
    pub fn duplicate_candidates(&self, case_id: Uuid) -> Result<Vec<DuplicateCandidate>> {
        self.candidates_within(case_id, None)
    }

    /// `duplicate_candidates` among the cases `scope` receives.
    fn candidates_within(
        &self,
        case_id: Uuid,
        scope: Option<&Scope>,
    ) -> Result<Vec<DuplicateCandidate>> {
        let case: ChildCase = self.get(case_id)?;
        let key = fold_name(&case.name);
        let rows = queries::duplicate_rows(
            &self.conn,
            &case.area.community,
            case_id,
            birth_year(&case),
            scope,
        )?;
        let mut found: Vec<DuplicateCandidate> = rows
            .into_iter()
            .map(|row| DuplicateCandidate {
                case_id: row.id,
                similarity: folded_similarity(&key, &row.name_key),
            })
            .filter(|c| c.similarity >= NAME_SIMILARITY_THRESHOLD)
            .collect();
        found.sort_by(|a, b| {
            b.similarity
                .total_cmp(&a.similarity)
                .then(a.case_id.cmp(&b.case_id))
        });
        Ok(found)
    }

    /// Merges `duplicate` into `keep` (a supervisor's decision; see the module's notes). Returns
    /// the kept case and the duplicate as stored.
    pub fn merge_cases(&mut self, keep: Uuid, duplicate: Uuid) -> Result<(ChildCase, ChildCase)> {
        let role = self.acting_role()?;
        rights::check_step(role, self.user_id(), &Step::Merge)?;
        if keep == duplicate {
            return Err(not_allowed("a case cannot be merged with itself"));
        }
        let mut kept: ChildCase = self.get(keep)?;
        let mut dup: ChildCase = self.get(duplicate)?;
        if !merge(&mut kept, &mut dup, &self.reference())? {
            return Ok((kept, dup));
        }
        let mut stored = self.update_together(&[kept, dup])?;
        let dup = stored.pop().expect("two records");
        let kept = stored.pop().expect("two records");
        Ok((kept, dup))
    }
}

impl Scoped<'_> {
    /// `Store::duplicate_candidates` of a case the principal receives, among the cases it
    /// receives.
    pub fn duplicate_candidates(&self, case_id: Uuid) -> Result<Vec<DuplicateCandidate>> {
        self.visible(case_id, Some(RecordKind::ChildCase))?;
        self.store.candidates_within(case_id, Some(&self.who))
    }
}

fn not_allowed(rule: &str) -> Error {
    Error::NotAllowed { rule: rule.into() }
}

/// Merges `dup` into `kept` on the records themselves (`Store::merge_cases`; the hub's console
/// through `sync::change_as`, where the role matrix judges the merge step): false when it was
/// already merged into `kept` (nothing to write).
pub fn merge(kept: &mut ChildCase, dup: &mut ChildCase, reference: &ReferenceData) -> Result<bool> {
    if kept.id == dup.id {
        return Err(not_allowed("a case cannot be merged with itself"));
    }
    // The pair merged offline in opposite directions (each names the other as the case it was
    // merged into): this merge settles which is kept.
    if kept.merged_into == Some(dup.id) && dup.merged_into == Some(kept.id) {
        kept.merged_into = None;
        dup.merged_from.remove(&kept.id);
        kept.merged_from.insert(dup.id);
        // Each case was the other's duplicate until now, so neither took what the other
        // recorded after its own merge: the case kept takes it now, as a first merge does.
        kept.bring_over(dup, None, reference);
        return Ok(true);
    }
    if kept.merged_into.is_some() {
        return Err(not_allowed(
            "the case to keep was itself merged into another case",
        ));
    }
    if let Some(into) = dup.merged_into {
        if into == kept.id {
            return Ok(false);
        }
        return Err(not_allowed(
            "the duplicate was already merged into another case",
        ));
    }
    kept.bring_over(dup, None, reference);
    kept.merged_from.insert(dup.id);
    dup.merged_into = Some(kept.id);
    Ok(true)
}

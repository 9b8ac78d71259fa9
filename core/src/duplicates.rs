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
//! adds nothing twice). Both writes are one transaction.

use crate::error::{Error, Result};
use crate::model::ChildCase;
use crate::store::Store;
use chrono::Datelike;
use rusqlite::params;
use uuid::Uuid;

/// Names at or above this Jaro-Winkler similarity (after folding) are candidates.
pub const NAME_SIMILARITY_THRESHOLD: f64 = 0.88;

/// The birth year, from the date of birth or from the age estimated on identification.
pub(crate) fn birth_year(case: &ChildCase) -> Option<i32> {
    match (case.date_of_birth, case.estimated_age) {
        (Some(dob), _) => Some(dob.year()),
        (None, Some(age)) => Some(case.identified_on.year() - age as i32),
        (None, None) => None,
    }
}

fn fold_char(c: char) -> &'static str {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'ç' | 'ć' | 'č' => "c",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => "e",
        'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' => "i",
        'ñ' | 'ń' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => "o",
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' => "u",
        'ý' | 'ÿ' => "y",
        'š' | 'ś' => "s",
        'ž' | 'ź' | 'ż' => "z",
        'ɛ' => "e",
        'ɔ' => "o",
        'œ' => "oe",
        'æ' => "ae",
        'ß' => "ss",
        _ => "",
    }
}

/// A name folded for comparison: lower case, accents removed, anything but letters and digits
/// a separator, words separated by one space ("N'Guessan  Éric" → "n guessan eric").
pub fn fold_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        let folded = fold_char(c);
        if !folded.is_empty() {
            out.push_str(folded);
        } else if c.is_alphanumeric() {
            out.push(c);
        } else {
            out.push(' ');
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn sorted_words(folded: &str) -> String {
    let mut words: Vec<&str> = folded.split(' ').collect();
    words.sort_unstable();
    words.join(" ")
}

/// How alike two names are, from 0 to 1: Jaro-Winkler on the folded names, as written and with
/// their words sorted (family name first or last).
pub fn name_similarity(a: &str, b: &str) -> f64 {
    let (a, b) = (fold_name(a), fold_name(b));
    score_folded(&a, &b)
}

fn score_folded(a: &str, b: &str) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    strsim::jaro_winkler(a, b).max(strsim::jaro_winkler(&sorted_words(a), &sorted_words(b)))
}

impl Store {
    /// Cases that may be the same child as `case_id`: same community, birth years at most one
    /// apart (or unknown), names at least `NAME_SIMILARITY_THRESHOLD` alike; best first, merged
    /// duplicates left out.
    pub fn duplicate_candidates(&self, case_id: Uuid) -> Result<Vec<(Uuid, f64)>> {
        let case: ChildCase = self.get(case_id)?;
        let key = fold_name(&case.name);
        let year = birth_year(&case);
        let mut stmt = self.conn.prepare_cached(
            "SELECT r.id, c.name_key FROM child_index c JOIN records r ON r.rowid = c.record
             WHERE c.community = ?1 AND r.id != ?2 AND c.merged = 0
               AND (?3 IS NULL OR c.birth_year IS NULL OR abs(c.birth_year - ?3) <= 1)",
        )?;
        let rows = stmt.query_map(
            params![case.area.community, case_id.as_bytes(), year],
            |row| {
                Ok((
                    crate::store::index::uuid_col(row, 0)?,
                    row.get::<_, String>(1)?,
                ))
            },
        )?;
        let mut found = Vec::new();
        for row in rows {
            let (id, other) = row?;
            let score = score_folded(&key, &other);
            if score >= NAME_SIMILARITY_THRESHOLD {
                found.push((id, score));
            }
        }
        found.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(found)
    }

    /// Merges `duplicate` into `keep` (a supervisor's decision; see the module's notes). Returns
    /// the kept case and the duplicate as stored.
    pub fn merge_cases(&mut self, keep: Uuid, duplicate: Uuid) -> Result<(ChildCase, ChildCase)> {
        let role = self.acting_role()?;
        crate::rights::check_step(role, self.user_id(), &crate::rights::Step::Merge)?;
        if keep == duplicate {
            return Err(Error::NotAllowed {
                rule: "a case cannot be merged with itself".into(),
            });
        }
        let mut kept: ChildCase = self.get(keep)?;
        let mut dup: ChildCase = self.get(duplicate)?;
        if !merge(&mut kept, &mut dup)? {
            return Ok((kept, dup));
        }
        let mut stored = self.update_together(&[kept, dup])?;
        let dup = stored.pop().expect("two records");
        let kept = stored.pop().expect("two records");
        Ok((kept, dup))
    }
}

/// Merges `dup` into `kept` on the records themselves (`Store::merge_cases`; the hub's console
/// through `sync::change_as`, where the role matrix judges the merge step): false when it was
/// already merged into `kept` (nothing to write).
pub fn merge(kept: &mut ChildCase, dup: &mut ChildCase) -> Result<bool> {
    let not_allowed = |rule: &str| Error::NotAllowed { rule: rule.into() };
    if kept.id == dup.id {
        return Err(not_allowed("a case cannot be merged with itself"));
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
    for (key, referral) in &dup.referrals {
        kept.referrals
            .entry(*key)
            .or_insert_with(|| referral.clone());
    }
    for (key, follow_up) in &dup.followups {
        kept.followups
            .entry(*key)
            .or_insert_with(|| follow_up.clone());
    }
    kept.merged_from.insert(dup.id);
    dup.merged_into = Some(kept.id);
    Ok(true)
}

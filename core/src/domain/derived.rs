//! Values derived from a record's values, pure: what the index rows, alerts, the outbox's
//! urgency, duplicate detection and indicators are computed from. The store calls them on
//! every write, whatever path changed the record, so they always follow the values.

use super::codes::{
    AlertSeverity, Answer, CaseStatus, ClassificationOutcome, ForcedLabourIndicator,
};
use super::records::{ChildCase, Visit};
use chrono::{Datelike, NaiveDate};

// ---------------------------------------------------------------------------------------------
// Alerts

/// The alert a case raises: while it is open (identified, referred or receiving services) and
/// not a merged duplicate. A withdrawn, prevented or closed child is no longer urgent.
pub fn case_severity(case: &ChildCase) -> Option<AlertSeverity> {
    if case.is_merged_duplicate()
        || !matches!(
            case.status,
            CaseStatus::Identified | CaseStatus::Referred | CaseStatus::ReceivingServices
        )
    {
        return None;
    }
    match case.classification.as_ref()?.outcome {
        ClassificationOutcome::WorstFormSuspected => Some(AlertSeverity::WorstFormSuspected),
        ClassificationOutcome::HazardousChildLabour => Some(AlertSeverity::HazardousChildLabour),
        _ => None,
    }
}

/// The alert a visit raises: whenever it recorded a forced-labour indicator.
pub fn visit_severity(visit: &Visit) -> Option<AlertSeverity> {
    (!visit.forced_labour.is_empty()).then_some(AlertSeverity::ForcedLabourIndicators)
}

// ---------------------------------------------------------------------------------------------
// Duplicates

/// Names at or above this Jaro-Winkler similarity (after folding) are candidates.
pub const NAME_SIMILARITY_THRESHOLD: f64 = 0.88;

/// The birth year, from the date of birth or from the age estimated on identification.
pub fn birth_year(case: &ChildCase) -> Option<i32> {
    match (case.date_of_birth, case.estimated_age) {
        (Some(dob), _) => Some(dob.year()),
        (None, Some(age)) => Some(case.identified_on.year() - age),
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
    folded_similarity(&a, &b)
}

/// `name_similarity` of two names folded already (`fold_name`).
pub fn folded_similarity(a: &str, b: &str) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    strsim::jaro_winkler(a, b).max(strsim::jaro_winkler(&sorted_words(a), &sorted_words(b)))
}

// ---------------------------------------------------------------------------------------------
// Indicators

/// Bit `i` set when the visit found `ForcedLabourIndicator::ALL[i]`.
pub fn forced_labour_mask(visit: &Visit) -> i64 {
    ForcedLabourIndicator::ALL
        .iter()
        .enumerate()
        .filter(|(_, i)| visit.forced_labour.contains_key(i))
        .fold(0, |mask, (bit, _)| mask | (1 << bit))
}

/// The indicators a mask (`forced_labour_mask`) holds.
pub fn indicators_in_mask(mask: i64) -> impl Iterator<Item = ForcedLabourIndicator> {
    ForcedLabourIndicator::ALL
        .into_iter()
        .enumerate()
        .filter(move |(bit, _)| mask & (1 << bit) != 0)
        .map(|(_, indicator)| indicator)
}

/// A checklist item answered "no", or a forced-labour indicator found.
pub fn has_violation(visit: &Visit) -> bool {
    !visit.forced_labour.is_empty() || visit.checklist.answers.values().any(|a| *a == Answer::No)
}

/// The age band a child is counted in: `under_12`, `12_14`, `15_17`, or `unknown`.
pub fn age_band(age: Option<u32>) -> &'static str {
    match age {
        Some(a) if a < 12 => "under_12",
        Some(a) if a < 15 => "12_14",
        Some(a) if a < 18 => "15_17",
        _ => "unknown",
    }
}

/// Midnight UTC of a day, in milliseconds: how days are kept in index rows.
pub fn midnight_ms(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis())
        .unwrap_or(0)
}

//! Values derived from a record's values, pure: what the index rows, alerts, the outbox's
//! urgency, duplicate detection and indicators are computed from. The store calls them on
//! every write, whatever path changed the record, so they always follow the values.

use super::codes::{
    AlertSeverity, Answer, CaseStatus, ClassificationOutcome, FollowUpSituation,
    ForcedLabourIndicator,
};
use super::records::{ChildCase, Concurrent, FollowUp, Visit};
use super::reference::builtin::FORCED_LABOUR;
use super::validation::shows_nothing;
use chrono::{Datelike, NaiveDate};
use std::collections::BTreeSet;

// ---------------------------------------------------------------------------------------------
// Alerts
//
// The order, most urgent first (`AlertSeverity`'s numbers): worst forms, with visits that found
// forced-labour indicators where children work; hazardous child labour; a child still working
// at the latest follow-up; forced-labour indicators among adults, several or a strong one
// before a single weak one.

/// The alert a case raises: while it is open (identified, referred or receiving services), as
/// its classification says; and whatever its status while its latest follow-up (of a verified
/// case, since its verification day) found the child still working (its classification's
/// alert if it raises one, else `StillWorking`). A merged duplicate raises none. The alert ends on the child's 18th birthday (`ChildCase::adult_on`),
/// which the calendar reaches without a write: the alert rows carry that day and the lists
/// leave out those past it.
pub fn case_severity(case: &ChildCase) -> Option<AlertSeverity> {
    if case.is_merged_duplicate() {
        return None;
    }
    let open = matches!(
        case.status,
        CaseStatus::Identified | CaseStatus::Referred | CaseStatus::ReceivingServices
    );
    // Of a verified case, what was seen since the verification: a child seen working the
    // day before a verification that found her withdrawn is withdrawn (the case showed
    // "withdrawn" and "still working" at once).
    let seen = match case.remediated_on.filter(|_| case.is_tracked()) {
        Some(verified) => crate::domain::records::latest_follow_up(
            case.followups.values().filter(|f| f.date >= verified),
        ),
        None => latest_follow_up(case),
    };
    let still_working = seen.is_some_and(|f| f.situation == FollowUpSituation::StillWorking);
    if !open && !still_working {
        return None;
    }
    let classified = match case.classification.as_ref().map(|c| c.outcome) {
        Some(ClassificationOutcome::WorstFormSuspected) => Some(AlertSeverity::WorstFormSuspected),
        Some(ClassificationOutcome::HazardousChildLabour) => {
            Some(AlertSeverity::HazardousChildLabour)
        }
        _ => None,
    };
    classified.or(still_working.then_some(AlertSeverity::StillWorking))
}

/// A case's alert and its day (`case_severity`, `case_alert_day`) by the most worrying reading
/// of its follow-ups and its status in conflict (`ChildCase::followup_readings`,
/// `status_readings`): a child one monitor found still working, or a case one supervisor
/// reopened while another closed it, raises the alert whichever value the merge happens to
/// show, until someone chooses.
pub fn case_alert_in_conflict(
    case: &ChildCase,
    concurrent: &[Concurrent],
) -> Option<(AlertSeverity, NaiveDate)> {
    let alert = |case: &ChildCase| case_severity(case).map(|s| (s, case_alert_day(case)));
    let mut readings = case.followup_readings(concurrent);
    let statuses = case.status_readings(concurrent);
    if readings.is_empty() && statuses.len() < 2 {
        return alert(case);
    }
    if readings.is_empty() {
        readings.push(case.followups.clone());
    }
    let mut reading = case.clone();
    let mut alerts = Vec::new();
    for status in statuses {
        for followups in &readings {
            reading.status = status;
            reading.followups = followups.clone();
            alerts.extend(alert(&reading));
        }
    }
    alerts
        .into_iter()
        .max_by_key(|(severity, day)| (*severity as i64, *day))
}

/// The day a case's alert is dated and sorted by (the alerts page lists the newest first):
/// the day of the latest follow-up when it found the child still working (a relapse found
/// yesterday is news, not the identification of months ago), else the identification.
pub fn case_alert_day(case: &ChildCase) -> NaiveDate {
    latest_follow_up(case)
        .filter(|f| f.situation == FollowUpSituation::StillWorking)
        .map_or(case.identified_on, |f| f.date.max(case.identified_on))
}

/// The furthest step of the monitoring cycle a case has reached, which indicators count
/// ("referred", "receiving services", "withdrawn or prevented" are stages reached, not the
/// status now): its status, or further when its record shows it went further before being
/// reopened — a verification date kept as history (withdrawn or prevented), a referral.
pub fn stage_reached(case: &ChildCase) -> CaseStatus {
    use CaseStatus::*;
    let rank = |s: CaseStatus| match s {
        Identified => 0,
        Referred => 1,
        ReceivingServices => 2,
        Withdrawn | Prevented | Closed => 3,
    };
    let evidence = match (case.remediated_on, case.referrals.is_empty()) {
        (Some(_), _) => Withdrawn,
        (None, false) => Referred,
        (None, true) => Identified,
    };
    if rank(evidence) > rank(case.status) {
        evidence
    } else {
        case.status
    }
}

/// The alert a case raises on `day`: `case_severity`, until the child's 18th birthday.
pub fn case_alert_on(case: &ChildCase, day: NaiveDate) -> Option<AlertSeverity> {
    case_severity(case).filter(|_| case.adult_on().is_none_or(|adult| adult > day))
}

/// The latest follow-up recorded (`records::latest_follow_up`).
pub fn latest_follow_up(case: &ChildCase) -> Option<&FollowUp> {
    crate::domain::records::latest_follow_up(case.followups.values())
}

/// The forced-labour indicators that can point to forced labour on their own (DOMAIN.md: "One
/// indicator can sometimes point to forced labour on its own; often several together are
/// needed"): the ILO's strong indicators among the 11.
pub fn is_strong_indicator(indicator: ForcedLabourIndicator) -> bool {
    use ForcedLabourIndicator::*;
    matches!(
        indicator,
        DebtBondage
            | RetentionOfIdentityDocuments
            | RestrictionOfMovement
            | PhysicalAndSexualViolence
            | IntimidationAndThreats
    )
}

/// Whether a visit's own record says it found children at work: anyone under 18 in the
/// workforce it counted, a child it names (`children_identified`), or an item of the child
/// labour checklist breached by a "yes" (each says what children were seen doing: "Children
/// below the minimum age working", "Children carrying heavy loads"…; an inspector may tick it
/// and leave the head-count blank). A child whose case names the visit is one too
/// (`visit_severity`'s `cases_opened`).
pub fn children_at_work(visit: &Visit) -> bool {
    let observed = visit.checklist.checklist == CHILD_LABOUR_CHECKLIST
        && visit
            .breaches
            .iter()
            .any(|code| visit.checklist.answers.get(code) == Some(&Answer::Yes));
    observed
        || !visit.children_identified.is_empty()
        || [&visit.workforce.female, &visit.workforce.male]
            .iter()
            .any(|b| b.under_12 > 0 || b.age_12_14 > 0 || b.age_15_17 > 0)
}

/// The key of the reference data's checklist of what an inspector sees of children at work.
pub const CHILD_LABOUR_CHECKLIST: &str = "child-labour";

/// How many children under 15 a visit counted at work (the head-count's bands end at 14; from
/// 15 a child's work may be allowed, which only a case tells). Those beyond the children it
/// registers (`children_without_case`) are children an inspector saw below the minimum age
/// whom no case registers yet.
pub fn children_under_15(visit: &Visit) -> u32 {
    let counted: i64 = [&visit.workforce.female, &visit.workforce.male]
        .iter()
        .map(|b| i64::from(b.under_12.max(0)) + i64::from(b.age_12_14.max(0)))
        .sum();
    u32::try_from(counted).unwrap_or(u32::MAX)
}

/// The children under 15 a visit counted beyond `registered`, the children its cases register
/// (those it names and those opened on it, as `Store::children_identified` counts them): a
/// visit that found them and registered no one ranks above paperwork in the review queue, and
/// its page says so.
pub fn children_without_case(visit: &Visit, registered: usize) -> u32 {
    let registered = u32::try_from(registered).unwrap_or(u32::MAX);
    children_under_15(visit).saturating_sub(registered)
}

/// The alert a visit raises when it found forced-labour indicators. Several indicators or a
/// strong one point to forced labour (DOMAIN.md: "often several together are needed"); where
/// children work, that is a worst form (C182 art. 3 a: "debt bondage, serfdom, forced
/// labour"). A single weak indicator ranks a step higher where children work than among
/// adults, but it is not a worst form on its own: a harvest's long days with one 16-year-old
/// on the team would otherwise top every list. `cases_opened`: whether a case names the visit
/// as the one its child was identified on (an inspector who registers the child may leave the
/// head-count blank): a child found at work there.
pub fn visit_severity(visit: &Visit, cases_opened: bool) -> Option<AlertSeverity> {
    let found = indicators_found(visit);
    if found.is_empty() {
        return None;
    }
    let forced_labour_likely = found.len() > 1 || found.iter().any(|i| is_strong_indicator(*i));
    Some(
        match (
            forced_labour_likely,
            cases_opened || children_at_work(visit),
        ) {
            (true, true) => AlertSeverity::WorstFormSuspected,
            (true, false) | (false, true) => AlertSeverity::ForcedLabourLikely,
            (false, false) => AlertSeverity::ForcedLabourIndicators,
        },
    )
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
        'ɛ' | 'ə' | 'ǝ' => "e",
        'ɔ' => "o",
        // Letters of West African alphabets (Hausa, Fulfulde, Bambara, Mooré, Ewe, Wolof…),
        // as a French keyboard writes them: "ngom" finds "Moussa Ŋgom" (`NEWLY_FOLDED_AT_33`).
        'ŋ' => "n",
        'ɲ' => "ny",
        'ɓ' => "b",
        'ɗ' | 'ɖ' | 'đ' => "d",
        'ƙ' => "k",
        'ƴ' => "y",
        'ƒ' => "f",
        'ɣ' => "g",
        'ʋ' => "v",
        'ɩ' | 'ı' => "i",
        'ʊ' => "u",
        'œ' => "oe",
        'æ' => "ae",
        'ß' => "ss",
        _ => "",
    }
}

/// The letters `fold_char` reads as others since schema 33, in both cases: the records whose
/// names hold one are indexed again at the upgrade (`store::schema::Rederive::NamesWith`).
pub(crate) const NEWLY_FOLDED_AT_33: &str = "əǝƏƎŋŊɲƝɓƁɗƊɖƉđĐƙƘƴƳƒƑɣƔʋƲɩƖıʊƱ";

/// A case code as a person typed it, in the form codes are written (printable ASCII, upper
/// case, no space): compatibility forms as what they stand for (full-width letters and
/// digits), a digit of any script as its ASCII digit (Arabic-Indic digits, as Arabic keyboards
/// in Chad, Mauritania or Sudan type them), and any dash as `-` (a non-breaking hyphen pasted
/// from a report).
pub fn fold_code(typed: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    typed
        .nfkc()
        .filter(|c| !c.is_whitespace() && !shows_nothing(*c))
        .map(|c| match c {
            '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{fe58}' | '\u{fe63}' | '\u{ff0d}' => '-',
            c => ascii_digit(c).unwrap_or(c),
        })
        .collect::<String>()
        .to_ascii_uppercase()
}

/// The ASCII digit a decimal digit of another script stands for.
fn ascii_digit(c: char) -> Option<char> {
    // The zero of each block of ten decimal digits the field's scripts use.
    const ZEROS: [u32; 16] = [
        0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6,
        0x0D66, 0x0E50, 0x0ED0, 0x1040, 0x17E0,
    ];
    let code = u32::from(c);
    ZEROS
        .iter()
        .find(|zero| (**zero..**zero + 10).contains(&code))
        .and_then(|zero| char::from_digit(code - zero, 10))
}

/// A name folded for comparison: lower case, accents removed, anything but letters and digits
/// a separator, words separated by one space ("N'Guessan  Éric" → "n guessan eric"). However
/// the name was typed: an accent as its own mark after the letter (as some keyboards and pasted
/// text give it: "e" + U+0301) folds as the letter with it does, and compatibility forms
/// (a ligature "ǅ", a full-width letter) as the letters they stand for; characters that show
/// nothing (`validation::shows_nothing`) are left out.
pub fn fold_name(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    use unicode_normalization::char::is_combining_mark;
    let mut out = String::with_capacity(name.len());
    // Invisible characters go with the accents: a zero-width space or a soft hyphen pasted
    // inside a name ("Mari\u{200B}am") would split it into words no one types.
    let letters = name
        .nfkd()
        .filter(|c| !is_combining_mark(*c) && !shows_nothing(*c));
    for c in letters.flat_map(char::to_lowercase) {
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

/// Marks that join the parts of one name ("N'Guessan", "Jean-Baptiste") rather than separate
/// names: a person types the name with them, without them, or with a space.
pub(crate) const NAME_JOINERS: [char; 6] = ['\'', '’', 'ʼ', '‘', '`', '-'];

/// The words a name is found by, folded as duplicates are compared (`fold_name`): each word,
/// each name joined by an apostrophe or a hyphen also as one word, and a lone letter also
/// joined to the word after it ("adjoua n guessan nguessan"): so "Nguessan", "N'Guessan",
/// "N Guessan" and "n'guessan" all find "Adjoua N'Guessan" and "Adjoua N Guessan", and "kofi
/// boeuf" finds "Kɔfi Bœuf".
pub fn search_terms(name: &str) -> String {
    let mut words: Vec<String> = fold_name(name).split(' ').map(str::to_string).collect();
    for word in joined_words(name) {
        if !words.contains(&word) {
            words.push(word);
        }
    }
    words.join(" ")
}

/// The folded words of a name (or of what was typed to find one) as one would write them run
/// together: the apostrophes and hyphens left out, and a lone letter joined to the word after
/// it ("N'Guessan", "N Guessan" → "nguessan"). Search terms and search queries are joined
/// alike (`search_terms`, the store's name search), so either way round finds the other.
pub fn joined_words(text: &str) -> Vec<String> {
    let mut joined: Vec<String> = Vec::new();
    for word in fold_name(&text.replace(NAME_JOINERS, "")).split(' ') {
        match joined.last_mut() {
            _ if word.is_empty() => {}
            Some(last) if last.chars().count() == 1 => last.push_str(word),
            _ => joined.push(word.to_string()),
        }
    }
    joined
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
    let found = indicators_found(visit);
    ForcedLabourIndicator::ALL
        .iter()
        .enumerate()
        .filter(|(_, i)| found.contains(i))
        .fold(0, |mask, (bit, _)| mask | (1 << bit))
}

/// The forced-labour indicators a visit found: those recorded with a note, and those answered
/// as found on the ILO indicators' checklist (`forced-labour`), which records the same facts
/// item by item.
pub fn indicators_found(visit: &Visit) -> BTreeSet<ForcedLabourIndicator> {
    let mut found: BTreeSet<_> = visit.forced_labour.keys().copied().collect();
    if visit.checklist.checklist == FORCED_LABOUR {
        found.extend(
            visit
                .breaches
                .iter()
                .filter_map(|code| ForcedLabourIndicator::from_code(code)),
        );
    }
    found
}

/// The indicators a mask (`forced_labour_mask`) holds.
pub fn indicators_in_mask(mask: i64) -> impl Iterator<Item = ForcedLabourIndicator> {
    ForcedLabourIndicator::ALL
        .into_iter()
        .enumerate()
        .filter(move |(bit, _)| mask & (1 << bit) != 0)
        .map(|(_, indicator)| indicator)
}

/// A checklist item answered as breached (`Visit::breaches`), or a forced-labour indicator
/// found.
pub fn has_violation(visit: &Visit) -> bool {
    !visit.forced_labour.is_empty() || !visit.breaches.is_empty()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Each letter the upgrade to schema 33 indexes again is one the fold reads otherwise now
    /// (a letter left out would leave its names unfound in an upgraded store).
    #[test]
    fn the_letters_folded_since_schema_33_fold_to_a_french_keyboards() {
        for letter in NEWLY_FOLDED_AT_33.chars() {
            let folded = fold_name(&letter.to_string());
            assert!(
                folded.is_ascii() && !folded.is_empty(),
                "{letter}: {folded}"
            );
        }
    }
}

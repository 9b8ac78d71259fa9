//! What a refusal tells the person whose input it refuses, in their language: the label of
//! the field it names and the rule it broke, from catalogues of the core's own words
//! (`messages/fr.txt`, `messages/en.txt`, lines of `key = text`). The console's pages and the
//! apps (`VigieError.textIn`) say the same thing: one home for these texts.
//!
//! A rule's text is looked up under `rule.<its words joined by _, each number n>`; a rule the
//! catalogues do not hold yet (an app's library newer than its translations) shows as the core
//! words it. No value is ever part of a rule's key or text: numbers are limits and dates.

use crate::error::Error;
use std::collections::HashMap;
use std::sync::OnceLock;

const FR: &str = include_str!("messages/fr.txt");
const EN: &str = include_str!("messages/en.txt");

/// The languages the catalogues hold (`fr`, `en`): another code reads French, the language of
/// most of Vigie's users.
fn is_english(language: &str) -> bool {
    language
        .split(['-', '_'])
        .next()
        .is_some_and(|l| l.eq_ignore_ascii_case("en"))
}

/// Lines of `key = text`; blank lines and those starting with `#` are not entries.
pub fn parse(text: &'static str) -> HashMap<&'static str, &'static str> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

/// The catalogue of `language` (`fr` or `en`, as `is_english` reads it).
pub fn catalogue(language: &str) -> &'static HashMap<&'static str, &'static str> {
    static FR_MAP: OnceLock<HashMap<&str, &str>> = OnceLock::new();
    static EN_MAP: OnceLock<HashMap<&str, &str>> = OnceLock::new();
    match is_english(language) {
        true => EN_MAP.get_or_init(|| parse(EN)),
        false => FR_MAP.get_or_init(|| parse(FR)),
    }
}

/// What a refusal says in `language`: for a value that broke a rule, the field's label and the
/// rule (`Date du suivi : ne peut pas précéder l'identification de l'enfant`); for a step not
/// allowed, the rule (`Refusé : seul un superviseur peut effacer un dossier`). `None` for any
/// other error, which is not the person's input to correct.
pub fn refusal(error: &Error, language: &str) -> Option<String> {
    match error {
        Error::Validation(v) => Some(field_refusal(&v.field, &v.rule, language)),
        Error::NotAllowed { rule } => Some(step_refusal(rule, language)),
        _ => None,
    }
}

/// `refusal` of a value of `field` that broke `rule`.
pub fn field_refusal(field: &str, rule: &str, language: &str) -> String {
    let label =
        field_label(field, language).unwrap_or_else(|| field_key(field).replace(['_', '.'], " "));
    text(
        language,
        "refused.field",
        &[&label, &rule_text(rule, language)],
    )
}

/// `refusal` of a step (or a change) `rule` does not allow.
pub fn step_refusal(rule: &str, language: &str) -> String {
    text(language, "refused.rule", &[&rule_text(rule, language)])
}

/// The entry `key` in `language`, each `{}` taking one of `values` in order (an entry a
/// catalogue lacks is French's, else `key`).
pub fn text(language: &str, key: &str, values: &[&str]) -> String {
    let found = catalogue(language)
        .get(key)
        .or_else(|| catalogue("fr").get(key))
        .copied()
        .unwrap_or(key);
    values.iter().fold(found.to_string(), |text, value| {
        text.replacen("{}", value, 1)
    })
}

/// A rule's text in `language`; its numbers (a limit, a range) go into the translation's `{}`
/// in order, or where it says `{1}`, `{2}`… (a date the core writes 2027-01-01 reads
/// 01/01/2027 in French: `{3}/{2}/{1}`).
pub fn rule_text(rule: &str, language: &str) -> String {
    // An id the rule names (a device's, a record's) tells the person nothing: the catalogues
    // word it `0`.
    if rule.len() >= 36 && rule.contains('-') {
        let plain = ids_as_zero(rule);
        if plain != rule {
            return rule_text(&plain, language);
        }
    }
    // An export with nothing for a recipient, named as the app named it (an area by its code,
    // a device by its id, which reads `0` by now).
    if let Some((recipient, why)) = rule
        .strip_prefix("nothing to seal for ")
        .and_then(|rest| rest.split_once(": "))
    {
        let recipient = match recipient.split_once(' ') {
            Some(("area", codes)) => text(language, "recipient.area", &[codes]),
            Some(("device", _)) => text(language, "recipient.device", &[]),
            _ => text(language, "recipient.together", &[]),
        };
        return text(
            language,
            "refused.nothing_to_seal_for",
            &[&recipient, &rule_text(why, language)],
        );
    }
    // A step refused with what other devices' changes made of the record meanwhile.
    if let Some(rule) = rule
        .strip_suffix(crate::sync::COMBINED_WITH_OTHERS)
        .map(str::trim_end)
    {
        return text(
            language,
            "refused.combined_with_others",
            &[&rule_text(rule, language)],
        );
    }
    if let Some(text) = hub_answer(rule, language).or_else(|| over_limit_text(rule, language)) {
        return text;
    }
    let Some(text) = catalogue(language).get(format!("rule.{}", rule_key(rule)).as_str()) else {
        if let Some(text) = frame_text(rule, language) {
            return text;
        }
        // A rule the core words as "what: why" (a reviewed entry refused for a push's
        // reason) is told part by part.
        return match rule.split_once(": ") {
            Some((what, why)) => text(
                language,
                "refused.because",
                &[&rule_text(what, language), &rule_text(why, language)],
            ),
            // A part that names a field, or a whole record (a step on a visit's content), is
            // told by its label.
            None => field_label(rule, language).unwrap_or_else(|| rule.to_string()),
        };
    };
    let numbers: Vec<&str> = rule
        .split(|c: char| !c.is_ascii_digit())
        .filter(|n| !n.is_empty())
        .collect();
    if text.contains("{1}") {
        return numbers
            .iter()
            .enumerate()
            .fold(text.to_string(), |text, (i, n)| {
                text.replace(&format!("{{{}}}", i + 1), n)
            });
    }
    numbers.iter().fold(text.to_string(), |text, n| {
        text.replacen("{}", &limit_in(n, language), 1)
    })
}

/// A limit's digits as the reader writes a large number (`digits_grouped`). Numbers of four
/// digits or fewer stay as they are: a rule's years and standards (2026, C138) are among them.
pub fn limit_in(digits: &str, language: &str) -> String {
    if digits.len() < 5 {
        return digits.to_string();
    }
    digits_grouped(digits, language)
}

/// Digits grouped by thousands as the reader writes them: 2 358 in French (a narrow no-break
/// space between thousands), 2,358 in English. The console's counts are written so too.
pub fn digits_grouped(digits: &str, language: &str) -> String {
    let separator = if is_english(language) {
        ','
    } else {
        '\u{202F}'
    };
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 * 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(separator);
        }
        out.push(digit);
    }
    out
}

/// `text` with each id in it (a UUID, hyphenated) written `0`.
fn ids_as_zero(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(candidate) = rest.get(..36)
            && uuid::Uuid::try_parse(candidate).is_ok()
            && candidate.contains('-')
        {
            out.push('0');
            rest = &rest[36..];
            continue;
        }
        let next = rest.chars().next().map_or(1, char::len_utf8);
        out.push_str(&rest[..next]);
        rest = &rest[next..];
    }
    out
}

/// Where a frame's key holds a code (`frame_key`).
const SLOT: char = '*';

/// The catalogue key of a rule the core words with codes in it (a status, a role, a kind: a
/// `format!` of `{}`): its words as `rule_key` joins them, each `{…}` a `*`
/// (`rule.only_a_supervisor_may_reopen_a_case__*_may_not_`).
pub fn frame_key(template: &str) -> String {
    let mut key = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        key.push_str(&rule_key(&rest[..open]));
        key.push(SLOT);
        rest = rest[open..]
            .find('}')
            .map_or("", |close| &rest[open + close + 1..]);
    }
    key.push_str(&rule_key(rest));
    key
}

/// A rule worded by a frame of the catalogues (`frame_key`), its codes by their labels in
/// the translation's `{}`, in order. A frame matches only when each part it leaves to a code
/// is one (`code_label`).
fn frame_text(rule: &str, language: &str) -> Option<String> {
    let key = rule_key(rule);
    catalogue(language)
        .iter()
        .filter_map(|(frame, text)| Some((frame.strip_prefix("rule.")?, text)))
        .filter(|(frame, _)| frame.contains(SLOT))
        .find_map(|(frame, text)| {
            let labels = labels_of(frame, &key, language)?;
            // In order, or where the translation says `{1}`, `{2}`…
            Some(if text.contains("{1}") {
                labels
                    .iter()
                    .enumerate()
                    .fold(text.to_string(), |text, (i, label)| {
                        text.replace(&format!("{{{}}}", i + 1), label)
                    })
            } else {
                labels.iter().fold(text.to_string(), |text, label| {
                    text.replacen("{}", label, 1)
                })
            })
        })
}

/// The labels of the codes `key` holds where a frame has its slots, when the rest is the
/// frame's words and each part a slot stands for is a code (`code_label`). A word of the frame
/// may come more than once in a key (`child_case`'s `_`): each place is tried.
fn labels_of(frame: &str, key: &str, language: &str) -> Option<Vec<String>> {
    fn fill(words: &[&str], rest: &str, language: &str) -> Option<Vec<String>> {
        let (word, later) = words.split_first()?;
        let ends: Vec<usize> = if later.is_empty() {
            rest.strip_suffix(word).map(str::len).into_iter().collect()
        } else if word.is_empty() {
            Vec::new()
        } else {
            rest.match_indices(word).map(|(at, _)| at).collect()
        };
        ends.into_iter().filter(|end| *end > 0).find_map(|end| {
            let label = code_label(&rest[..end], language)?;
            let mut labels = vec![label];
            if !later.is_empty() {
                labels.extend(fill(later, &rest[end + word.len()..], language)?);
            }
            Some(labels)
        })
    }
    let mut words = frame.split(SLOT);
    let rest = key.strip_prefix(words.next()?)?;
    let words: Vec<&str> = words.collect();
    fill(&words, rest, language)
}

/// The label of a code a rule holds: a case's or a visit's status, a record kind, a role in
/// words (`Role::in_words`), a field; or nothing for an id (the caller wrote it `0`: an id
/// tells the person reading nothing, and `rule_key` makes it `n`).
fn code_label(code: &str, language: &str) -> Option<String> {
    if code == "n" {
        return Some(String::new());
    }
    let catalogue = catalogue(language);
    [
        "status",
        "visit_status",
        "record_kind",
        "role_words",
        "field",
    ]
    .iter()
    .find_map(|set| catalogue.get(format!("{set}.{code}").as_str()))
    .map(|label| label.to_string())
}

/// A record over one of its bounds (the hub's `the record exceeds the limit on number of
/// operations`, a device's `record <id> exceeds the limit on …`): the bound by its label. The
/// id tells the person reading nothing they can act on.
fn over_limit_text(rule: &str, language: &str) -> Option<String> {
    let (_, limit) = rule.split_once(" exceeds the limit on ")?;
    Some(text(
        language,
        "refused.over_limit",
        &[&limit_label(limit, language)?],
    ))
}

/// The label of a bound a record or an attachment went over: a `DocumentLimit` as the core
/// words it (`number of operations`), or an attachment limit's code (`file_bytes`).
pub fn limit_label(limit: &str, language: &str) -> Option<String> {
    catalogue(language)
        .get(format!("limit.{}", rule_key(limit)).as_str())
        .map(|label| label.to_string())
}

/// The hub's refusal an app's transport passes on (`hub answered 403: …`): its status, and its
/// words translated as a rule's.
fn hub_answer(rule: &str, language: &str) -> Option<String> {
    let rest = rule.strip_prefix("hub answered ")?;
    let (status, said) = rest.split_once(": ")?;
    if status.len() != 3 || !status.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text(
        language,
        "transport.hub_answered",
        &[status, &rule_text(said, language)],
    ))
}

/// A classification's reason (`Classification::reason`, the core's words: which rule decided)
/// in `language`; for a case classified by a value in conflict, the fields and values that
/// decided it follow, by their labels. A reason the catalogues do not hold (a library newer
/// than its translations) reads as the core words it.
pub fn classification_reason(reason: &str, language: &str) -> String {
    use crate::domain::classify::{IN_CONFLICT_CLOSE, IN_CONFLICT_OPEN};
    let (rule, by) = match reason
        .strip_suffix(IN_CONFLICT_CLOSE)
        .and_then(|r| r.split_once(IN_CONFLICT_OPEN))
    {
        Some((rule, by)) => (rule, Some(by)),
        None => (reason, None),
    };
    let said = catalogue(language)
        .get(format!("reason.{}", rule_key(rule)).as_str())
        .map_or_else(|| rule.to_string(), |s| s.to_string());
    let Some(by) = by else {
        return said;
    };
    let values: Vec<String> = by
        .split(", ")
        .map(|pair| match pair.split_once(' ') {
            Some((field, value)) => {
                let label = field_label(field, language).unwrap_or_else(|| field.to_string());
                let value = value.trim_matches('"');
                // A yes or no, and a schooling, in words; numbers and days as they are.
                let key = match field {
                    "night_work" => format!("value.{value}"),
                    "school" => format!("school.{value}"),
                    _ => String::new(),
                };
                let value = catalogue(language)
                    .get(key.as_str())
                    .copied()
                    .unwrap_or(value);
                format!("{label} {value}")
            }
            None => pair.to_string(),
        })
        .collect();
    text(language, "reason.in_conflict", &[&said, &values.join(", ")])
}

/// The label of a record kind (`visit`), else of a field (`field.<path without ids>`), else of
/// the nearest field holding it (`hazards.<code>`: the hazards).
pub fn field_label(path: &str, language: &str) -> Option<String> {
    let catalogue = catalogue(language);
    let mut key = field_key(path);
    if let Some(kind) = catalogue.get(format!("record_kind.{key}").as_str()) {
        return Some(kind.to_string());
    }
    loop {
        if let Some(label) = catalogue.get(format!("field.{key}").as_str()) {
            return Some(label.to_string());
        }
        key = key.rsplit_once('.')?.0.to_string();
    }
}

/// The key of a rule's text (`rule.<key>`): its words joined by `_`, each number `n`.
pub fn rule_key(rule: &str) -> String {
    let mut key = String::with_capacity(rule.len());
    for c in rule.chars() {
        if c.is_ascii_digit() {
            if !key.ends_with('#') {
                key.push('#');
            }
        } else if c.is_ascii_alphanumeric() {
            key.push(c.to_ascii_lowercase());
        } else {
            key.push('_');
        }
    }
    key.replace('#', "n")
}

/// A field's path without the ids of the entries it goes through (`followups.<id>.date` is
/// `followups.date`).
fn field_key(path: &str) -> String {
    path.split('.')
        .filter(|part| uuid::Uuid::parse_str(part).is_err())
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer session or a sync message refused reads wholly in French: the handshake's steps,
    /// a sealed message's reasons and a damaged message's (they were told in English inside
    /// the French sentence).
    #[test]
    fn peer_and_message_refusals_read_in_french() {
        use crate::identity::IdentityError;
        let refusals = [
            IdentityError::Handshake {
                step: "the peer presented this device's own certificate",
            }
            .to_string(),
            IdentityError::PeerMessage {
                reason: "not sealed in this session, or altered",
            }
            .to_string(),
            Error::Protocol(crate::error::DecodeError::Compression).to_string(),
        ];
        for refusal in refusals {
            let french = rule_text(&refusal, "fr");
            for english in ["peer", "sealed", "message refused", "the "] {
                assert!(!french.contains(english), "{french}");
            }
        }
    }

    /// Every reason the rules give a child's classification is said in both languages, and
    /// every reason the catalogues hold is one the rules give (the situations below reach each
    /// rule: ages, hours, night work, hazards, worst forms and schooling, with the exception
    /// from 16 and without).
    #[test]
    fn every_classification_reason_reads_in_both_languages() {
        use crate::domain::classify::{NEVER_FROM_16, RuleSet, Situation};
        use crate::domain::codes::SchoolStatus;
        use std::collections::{BTreeSet, HashSet};
        let mut strict = RuleSet::ilo_default();
        let mut from_16 = strict.clone();
        from_16.thresholds.hazardous_work_age = 16;
        // A country's own listed work beyond R190's, which the exception may cover.
        let listed = "trade_learnt_under_supervision".to_string();
        for rules in [&mut strict, &mut from_16] {
            rules
                .thresholds
                .hazardous_work
                .push(crate::domain::reference::Item::new(
                    &listed,
                    "Métier appris sous supervision",
                    "Trade learnt under supervision",
                ));
        }
        let never = strict
            .thresholds
            .hazardous_work
            .iter()
            .map(|h| h.code.clone())
            .find(|c| NEVER_FROM_16.contains(&c.as_str()))
            .expect("a hazard the exception never covers");
        let hazard_sets: Vec<BTreeSet<String>> = vec![
            BTreeSet::new(),
            BTreeSet::from([listed]),
            BTreeSet::from([never]),
        ];
        let mut reasons = HashSet::new();
        for rules in [&strict, &from_16] {
            for age in std::iter::once(None).chain((5..=18).map(Some)) {
                for hours in [0, 5, 20, 60] {
                    for night_work in [false, true] {
                        for hazards in &hazard_sets {
                            for worst_form in [false, true] {
                                for (school, work_described) in SchoolStatus::ALL
                                    .into_iter()
                                    .flat_map(|school| [(school, false), (school, true)])
                                {
                                    let situation = Situation {
                                        age,
                                        hours_per_week: hours,
                                        night_work,
                                        hazards,
                                        worst_form,
                                        school,
                                        work_described,
                                    };
                                    reasons.insert(rules.classify_situation(&situation).reason);
                                }
                            }
                        }
                    }
                }
            }
        }
        let keys: HashSet<String> = reasons
            .iter()
            .map(|r| format!("reason.{}", rule_key(r)))
            .collect();
        for language in ["fr", "en"] {
            for key in &keys {
                assert!(
                    catalogue(language).contains_key(key.as_str()),
                    "{language}: {key}"
                );
            }
            let held: HashSet<String> = catalogue(language)
                .keys()
                .filter(|k| k.starts_with("reason.") && **k != "reason.in_conflict")
                .map(|k| k.to_string())
                .collect();
            assert_eq!(held, keys, "{language}: the reasons held are the rules'");
        }
        assert_eq!(reasons.len(), 20, "{reasons:?}");
    }

    #[test]
    fn a_classification_reason_reads_in_the_users_language_with_the_values_in_conflict() {
        let reason = "long hours below the hazardous work age (by a value in conflict: \
                      hours_per_week 50, school \"dropped_out\"; resolve the conflict)";
        assert_eq!(
            classification_reason(reason, "fr"),
            "longues heures de travail avant l'âge d'admission aux travaux dangereux (selon une \
             valeur en conflit : Heures par semaine 50, Scolarité Déscolarisé ; résolvez le \
             conflit)"
        );
        assert_eq!(
            classification_reason("working below the light work age", "en"),
            "working below the light work age"
        );
        let night = "night work below the hazardous work age (by a value in conflict: \
                     night_work true; resolve the conflict)";
        assert_eq!(
            classification_reason(night, "en"),
            "night work below the hazardous work age (by a value in conflict: Night work yes; \
             resolve the conflict)"
        );
        // A reason of a newer library reads as its words.
        assert_eq!(
            classification_reason("a rule to come", "fr"),
            "a rule to come"
        );
    }

    /// What refuses a bundle's recipients, or an app's naming of them, reads in French with no
    /// English left in it.
    #[test]
    fn a_bundle_refused_for_its_recipients_reads_in_french() {
        for (rule, said) in [
            (
                "nothing to seal for area CI-R2: none of the records selected lies in the areas named",
                "rien à sceller pour la zone CI-R2 : aucun des dossiers choisis ne se trouve dans les zones nommées",
            ),
            (
                "nothing to seal for device 01a25101-f0e7-7089-8461-a8d1e8c65ec1: its areas cover none of the records selected",
                "rien à sceller pour cet appareil : ses zones ne couvrent aucun des dossiers choisis",
            ),
            (
                "nothing to seal for the recipients together: no record selected lies in the areas of every recipient: export a bundle for each",
                "rien à sceller pour l'ensemble des destinataires : aucun dossier choisi ne se trouve dans les zones de tous les destinataires : exportez un paquet pour chacun",
            ),
            (
                "no recipient: no valid certificate for that device in the directory",
                "aucun destinataire : aucun certificat valide pour cet appareil dans l'annuaire",
            ),
            (
                "must name a device by its id",
                "doit désigner un appareil par son identifiant",
            ),
        ] {
            assert_eq!(rule_text(rule, "fr"), said);
        }
    }

    /// A reference file the console or `vigie reference publish` refuses says why in French
    /// too: an administrator on a French page read "not a reference data file (…): syntax".
    #[test]
    fn a_reference_files_refusals_read_in_french() {
        for json in [
            "{",
            "{\"key\": }",
            "[1]",
            "{\"key\": \"CI\"}",
            "{\"key\": \"CI\", \"key\": \"GH\", \"sectors\": []}",
            "{\"key\": \"CI\", \"sectors\": 5}",
            "{\"key\": \"CI\", \"sectors\": [{\"code\": 5}]}",
            "{\"key\": \"CI\", \"sectors\": {\"code\": true}}",
            "{\"key\": \"CI\", \"country_profile\": {\"minimum_age\": -1}}",
            "{\"key\": \"CI\", \"country_profile\": {\"minimum_age\": \"15\"}}",
            &format!("{}1{}", "[".repeat(200), "]".repeat(200)),
        ] {
            let e = crate::ReferenceFile::parse(json).unwrap_err();
            let french = rule_text(&e.rule, "fr");
            // The content types are codes, written as the file writes them.
            let english = english_in(&french, &e.rule);
            assert!(
                english.iter().all(|words| words.contains('_')),
                "{json}: {french}"
            );
            assert!(
                !french.contains(" expected ") && !french.contains("type"),
                "{french}"
            );
        }
    }

    #[test]
    fn both_catalogues_hold_the_same_keys() {
        let (fr, en) = (parse(FR), parse(EN));
        let mut missing: Vec<_> = fr.keys().filter(|k| !en.contains_key(*k)).collect();
        missing.extend(en.keys().filter(|k| !fr.contains_key(*k)));
        assert!(missing.is_empty(), "{missing:?}");
    }

    /// Every answer of the hub that refuses a record (`wire::Refusal`), and a record a device
    /// refuses over a bound, reads in French as in English: a monitor was shown "Refusé : the
    /// record exceeds the limit on number of operations".
    #[test]
    fn every_refusal_of_a_record_reads_in_both_languages() {
        use crate::domain::limits::DocumentLimit;
        use crate::sync::wire::Refusal;
        let limits = [
            DocumentLimit::Bytes,
            DocumentLimit::Depth,
            DocumentLimit::Operations,
            DocumentLimit::Changes,
            DocumentLimit::TextLength,
        ];
        let mut refusals = vec![
            Refusal::OutOfScope,
            Refusal::KindNotAllowed,
            Refusal::ForeignChanges,
            Refusal::MissingHistory,
            Refusal::Damaged,
            Refusal::Invalid,
            Refusal::WrongKind,
            Refusal::BreaksValidation,
            Refusal::UnknownReference,
            Refusal::AreaNotInTree,
            Refusal::StepNotAllowed,
            Refusal::WrongAuthor,
            Refusal::AuthorRevoked,
        ];
        refusals.extend(limits.map(|limit| Refusal::OverLimit { limit }));
        for refusal in &refusals {
            // A refusal added to the hub must be added above (and to the catalogues).
            match refusal {
                Refusal::OutOfScope
                | Refusal::KindNotAllowed
                | Refusal::ForeignChanges
                | Refusal::MissingHistory
                | Refusal::Damaged
                | Refusal::Invalid
                | Refusal::WrongKind
                | Refusal::OverLimit { .. }
                | Refusal::BreaksValidation
                | Refusal::UnknownReference
                | Refusal::AreaNotInTree
                | Refusal::StepNotAllowed
                | Refusal::WrongAuthor
                | Refusal::AuthorRevoked => {}
            }
            let words = refusal.to_string();
            let french = step_refusal(&words, "fr");
            assert!(
                !french.contains(&words) && !french.contains(" the "),
                "{french}"
            );
            assert!(step_refusal(&words, "en").starts_with("Not allowed: "));
        }
        for limit in limits {
            let error = Error::OverLimit {
                id: uuid::Uuid::now_v7(),
                limit,
            };
            let french = rule_text(&error.to_string(), "fr");
            assert!(
                french.starts_with("le dossier dépasse une limite ("),
                "{french}"
            );
            assert!(!french.contains(limit.as_str()), "{french}");
        }
        assert_eq!(
            step_refusal(
                &Refusal::OverLimit {
                    limit: DocumentLimit::Operations
                }
                .to_string(),
                "fr"
            ),
            "Refusé : le dossier dépasse une limite (nombre d'opérations de son historique)"
        );
        assert_eq!(
            limit_label("file_bytes", "fr").as_deref(),
            Some("taille d'une pièce jointe, en octets")
        );
    }

    /// English left in a French text: three words of `english` in a row.
    fn english_in(french: &str, english: &str) -> Vec<String> {
        let words: Vec<&str> = english.split_whitespace().collect();
        words
            .windows(3)
            .map(|three| three.join(" "))
            .filter(|three| french.contains(three.as_str()))
            .collect()
    }

    /// Every refusal of a workflow step the role matrix gives (each role, each status to each
    /// other, each step), and those the merged record of two devices gives, reads in French:
    /// a monitor was shown "Refusé : only a supervisor may make a case withdrawn (a community
    /// monitor may not)".
    #[test]
    fn every_workflow_refusal_reads_in_french() {
        use crate::domain::codes::{CaseStatus, RecordKind, Role, VisitStatus};
        use crate::domain::rights::{self, Step, Tracking};
        let (roles, cases, visits) = (Role::ALL, CaseStatus::ALL, VisitStatus::ALL);
        let trackings = [
            Tracking::Unverified,
            Tracking::Verified,
            Tracking::WorkingOnTheDay,
            Tracking::FollowedUp(crate::domain::codes::FollowUpSituation::StillWorking),
        ];
        let someone = uuid::Uuid::now_v7();
        let mut rules = std::collections::BTreeSet::new();
        for role in roles {
            let mut steps = vec![
                Step::ReferralRemoved,
                Step::FollowUpRemoved,
                Step::Merge,
                Step::ReviewerCleared,
                Step::MergedDuplicateEdited,
                Step::VerifiedBeforeReferral,
                Step::Review { reviewer: None },
                Step::VisitSubmitted { visitor: someone },
                Step::Inspection { field: "kind" },
            ];
            for kind in [RecordKind::ChildCase, RecordKind::Visit, RecordKind::User] {
                steps.extend([
                    Step::Create(kind),
                    Step::Edit(kind),
                    Step::Administration(kind),
                ]);
            }
            for from in cases {
                steps.push(Step::LastReferralRemoved { status: from });
                steps.push(Step::Remediated {
                    unverifies: Some(from),
                    refacts: None,
                });
                for tracking in trackings {
                    steps.push(Step::Remediated {
                        unverifies: None,
                        refacts: Some((from, tracking)),
                    });
                }
                for to in cases {
                    if let Err(e) = rights::check_case_transition(from, to, role) {
                        rules.insert(e.rule);
                    }
                    for tracking in trackings {
                        for has_referral in [false, true] {
                            steps.push(Step::CaseStatus {
                                from,
                                to,
                                has_referral,
                                tracking,
                            });
                        }
                    }
                }
            }
            for from in visits {
                for to in visits {
                    steps.push(Step::VisitStatus { from, to });
                    steps.push(Step::VisitContent {
                        from,
                        to,
                        visitor: someone,
                    });
                }
            }
            for step in &steps {
                if let Err(e) = rights::check_step(role, uuid::Uuid::now_v7(), step) {
                    rules.insert(e.rule);
                }
            }
        }
        let combined = format!(
            "only a supervisor may reopen a case (a community monitor may not) {}",
            crate::sync::COMBINED_WITH_OTHERS
        );
        rules.insert(combined);
        assert!(rules.len() > 20, "{rules:?}");
        let untranslated: Vec<String> = rules
            .iter()
            .filter_map(|rule| {
                let french = rule_text(rule, "fr");
                let english = english_in(&french, rule);
                (!english.is_empty()).then(|| format!("{rule} => {french}"))
            })
            .collect();
        assert!(untranslated.is_empty(), "{untranslated:#?}");
        assert_eq!(
            step_refusal(
                "only a supervisor may make a case withdrawn (a community monitor may not)",
                "fr"
            ),
            "Refusé : seul un superviseur peut faire passer un cas à « Retiré » (un agent \
             communautaire ne le peut pas)"
        );
    }

    #[test]
    fn a_refusal_reads_in_its_language_and_an_unknown_language_reads_french() {
        let error = Error::Validation(crate::ValidationError::new(
            format!("followups.{}.date", uuid::Uuid::now_v7()),
            "must not be before the child was identified",
        ));
        let french = "Date du suivi : ne peut pas précéder l'identification de l'enfant";
        assert_eq!(refusal(&error, "fr").as_deref(), Some(french));
        assert_eq!(refusal(&error, "fr-CI").as_deref(), Some(french));
        assert_eq!(refusal(&error, "wo").as_deref(), Some(french));
        assert_eq!(
            refusal(&error, "en").as_deref(),
            Some("Follow-up date: cannot be before the child was identified")
        );
        assert_eq!(refusal(&Error::WrongKeyOrNotAStore, "fr"), None);
        let step = Error::NotAllowed {
            rule: "a case cannot go from identified to closed".into(),
        };
        assert_eq!(
            refusal(&step, "fr").as_deref(),
            Some("Refusé : un cas ne peut pas passer de « Identifié » à « Clôturé »")
        );
        let date = Error::Validation(crate::ValidationError::new(
            "follow_up.date",
            "must be a date written YYYY-MM-DD",
        ));
        assert_eq!(
            refusal(&date, "fr").as_deref(),
            Some("Date du suivi : doit être un jour du calendrier, écrit AAAA-MM-JJ")
        );
        // A conflict's reason, its id worded `0` (`VigieError.text_in`): a kind whose code
        // holds the frame's own `_` too.
        assert_eq!(
            rule_text("child_case 0 already exists", "fr"),
            "« Cas d'enfant » : un enregistrement de cet identifiant existe déjà"
        );
        assert_eq!(
            rule_text("record 0 was erased: its id is not used again", "fr"),
            "ce dossier a été effacé : son identifiant ne sert plus"
        );
        // A large limit is written as the reader writes it.
        let many = Error::Validation(crate::ValidationError::new(
            "workforce.male.adults",
            "must be at most 100000",
        ));
        let said = refusal(&many, "fr").unwrap();
        assert!(said.ends_with("100\u{202F}000"), "{said}");
        assert!(refusal(&many, "en").unwrap().ends_with("100,000"));
        // A number of the rule, whatever it is, goes into the text.
        let few = Error::Validation(crate::ValidationError::new(
            "max_failed_pins",
            "must be at least 1",
        ));
        assert!(
            refusal(&few, "fr")
                .unwrap()
                .ends_with("doit valoir au moins 1")
        );
        assert_eq!(
            rule_text("hub answered 401: unknown device or wrong secret", "fr"),
            "le hub a répondu 401 : appareil inconnu ou secret erroné"
        );
    }
}

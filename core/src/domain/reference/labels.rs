//! Labels by language, and coded items (a code with its labels): what every kind of reference
//! data is made of. A new language is new data, not new code.

use crate::domain::codes::Answer;
use crate::domain::validation::ValidationError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Texts by language code (`fr`, `en`, `es`, `sw`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Labels(pub BTreeMap<String, String>);

impl Labels {
    /// Languages tried, in order, after the one asked for: the product's own two.
    pub const FALLBACK: [&'static str; 2] = ["fr", "en"];

    pub fn fr_en(fr: &str, en: &str) -> Labels {
        Labels::default().with("fr", fr).with("en", en)
    }

    pub fn with(mut self, language: &str, text: &str) -> Labels {
        self.insert(language, text);
        self
    }

    pub fn insert(&mut self, language: &str, text: &str) {
        self.0
            .insert(language.to_ascii_lowercase(), text.to_string());
    }

    /// The text in `language` (`fr-CI` also finds `fr`), else French, else English.
    pub fn get(&self, language: &str) -> Option<&str> {
        let language = language.to_ascii_lowercase();
        let primary = language.split(['-', '_']).next().unwrap_or_default();
        [language.as_str(), primary]
            .into_iter()
            .chain(Self::FALLBACK)
            .find_map(|l| self.0.get(l).filter(|t| !t.trim().is_empty()))
            .map(String::as_str)
    }

    pub fn languages(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub(crate) fn validate(&self, field: &str) -> Result<(), ValidationError> {
        if !self.0.values().any(|t| !t.trim().is_empty()) {
            return Err(ValidationError::new(
                field,
                "at least one label is required",
            ));
        }
        let well_formed = |l: &str| {
            (2..=16).contains(&l.len())
                && l.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                && !l.starts_with('-')
        };
        if !self.0.keys().all(|l| well_formed(l)) {
            return Err(ValidationError::new(
                field,
                "a language code is lowercase letters and hyphens (fr, en, sw)",
            ));
        }
        Ok(())
    }
}

/// A code with its labels: a sector, a checklist item, a hazard, a worst form, a service type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub code: String,
    pub labels: Labels,
}

impl Item {
    pub fn new(code: &str, fr: &str, en: &str) -> Item {
        Item {
            code: code.into(),
            labels: Labels::fr_en(fr, en),
        }
    }

    /// The label in `language`, with the fallbacks of `Labels::get`, else the code itself.
    pub fn label(&self, language: &str) -> &str {
        self.labels.get(language).unwrap_or(&self.code)
    }
}

pub type Sector = Item;

/// A checklist item: what it asks, and which answer records a breach. Checklists word their
/// items both ways: "Workers keep their identity papers" is breached by a "no", "Children
/// below the minimum age working" by a "yes"; a visit read by one rule for both would count
/// the clean farm and miss the one where children work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecklistItem {
    pub code: String,
    pub labels: Labels,
    /// `no` (an item worded as a rule kept, the default) or `yes` (worded as a fault found).
    #[serde(
        default = "ChecklistItem::breached_by_no",
        deserialize_with = "breach_answer"
    )]
    pub breach: Answer,
}

/// A checklist item's breach answer: `yes` or `no` only (a "not applicable" breaches nothing),
/// said so when a file gives another.
fn breach_answer<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Answer, D::Error> {
    match String::deserialize(deserializer)?.as_str() {
        "yes" => Ok(Answer::Yes),
        "no" => Ok(Answer::No),
        _ => Err(serde::de::Error::custom(BREACH_ANSWER)),
    }
}

/// The rule a checklist item's breach answer breaks.
const BREACH_ANSWER: &str = "the answer that records a breach is yes or no";

impl ChecklistItem {
    /// An item worded as a rule kept: a "no" breaches it.
    pub fn new(code: &str, fr: &str, en: &str) -> ChecklistItem {
        ChecklistItem {
            code: code.into(),
            labels: Labels::fr_en(fr, en),
            breach: Answer::No,
        }
    }

    fn breached_by_no() -> Answer {
        Answer::No
    }

    /// The label in `language`, with the fallbacks of `Labels::get`, else the code itself.
    pub fn label(&self, language: &str) -> &str {
        self.labels.get(language).unwrap_or(&self.code)
    }
}

/// What `validate_items` reads of an item.
pub(crate) trait Coded {
    fn code(&self) -> &str;
    fn labels(&self) -> &Labels;
}

impl Coded for Item {
    fn code(&self) -> &str {
        &self.code
    }
    fn labels(&self) -> &Labels {
        &self.labels
    }
}

impl Coded for ChecklistItem {
    fn code(&self) -> &str {
        &self.code
    }
    fn labels(&self) -> &Labels {
        &self.labels
    }
}

pub(crate) use crate::domain::validation::valid_code;

/// A checklist's items: coded items, each breached by a "yes" or a "no" (never by "not
/// applicable", which says the item was not judged).
pub(crate) fn validate_checklist_items(
    field: &str,
    items: &[ChecklistItem],
) -> Result<(), ValidationError> {
    validate_items(field, items, true)?;
    match items.iter().find(|i| i.breach == Answer::NotApplicable) {
        Some(item) => Err(ValidationError::new(
            format!("{field}.{}.breach", item.code),
            BREACH_ANSWER,
        )),
        None => Ok(()),
    }
}

pub(crate) fn validate_items<T: Coded>(
    field: &str,
    items: &[T],
    required: bool,
) -> Result<(), ValidationError> {
    if required && items.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    let mut seen = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        if !valid_code(item.code()) {
            return Err(ValidationError::new(
                format!("{field}.{i}.code"),
                "a code is 1 to 64 printable ASCII characters without spaces",
            ));
        }
        if !seen.insert(item.code()) {
            return Err(ValidationError::new(
                format!("{field}.{}", item.code()),
                "the same code appears twice",
            ));
        }
        item.labels()
            .validate(&format!("{field}.{}.labels", item.code()))?;
    }
    Ok(())
}

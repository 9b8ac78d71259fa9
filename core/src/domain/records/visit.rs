//! A labour inspection, a community monitoring round or a follow-up visit to a workplace.

use super::{Record, Version, record_identity, record_pins, set_as_map};
use crate::domain::area::{Area, GeoPoint};
use crate::domain::codes::{
    Answer, ForcedLabourIndicator, RecordKind, ReferenceType, VisitAction, VisitKind, VisitStatus,
};
use crate::domain::reference::{ReferenceData, ReferencePins};
use crate::domain::validation::{
    MAX_CHILDREN_PER_VISIT, MAX_WORKFORCE_BAND, ValidationError, at_most_entries, require_count,
};
use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// Counts of workers by age band.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct AgeBands {
    #[cfg_attr(feature = "uniffi", uniffi(default = 0))]
    pub under_12: i32,
    #[cfg_attr(feature = "uniffi", uniffi(default = 0))]
    pub age_12_14: i32,
    #[cfg_attr(feature = "uniffi", uniffi(default = 0))]
    pub age_15_17: i32,
    #[cfg_attr(feature = "uniffi", uniffi(default = 0))]
    pub adults: i32,
}

impl AgeBands {
    fn validate(&self, field: &str) -> Result<(), ValidationError> {
        for (band, count) in [
            ("under_12", self.under_12),
            ("age_12_14", self.age_12_14),
            ("age_15_17", self.age_15_17),
            ("adults", self.adults),
        ] {
            require_count(&format!("{field}.{band}"), count)?;
            if count > MAX_WORKFORCE_BAND {
                return Err(ValidationError::new(
                    format!("{field}.{band}"),
                    format!("must be at most {MAX_WORKFORCE_BAND}"),
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Workforce {
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub female: AgeBands,
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub male: AgeBands,
}

/// Answers to a named, versioned checklist, keyed by item code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct ChecklistAnswers {
    #[cfg_attr(feature = "uniffi", uniffi(default = ""))]
    pub checklist: String,
    #[cfg_attr(feature = "uniffi", uniffi(default = 0))]
    pub version: i32,
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub answers: BTreeMap<String, Answer>,
}

impl ChecklistAnswers {
    /// The items whose answer records a breach, by each item's wording
    /// (`ChecklistItem::breach`) in the version answered. A device that lacks that version
    /// reads the answers by the newest version it holds of the same checklist (the same code
    /// keeps its meaning from one version to the next), and an item it cannot find at all as
    /// breached by a "no", as most items are worded.
    pub fn breaches(&self, reference: &ReferenceData) -> Vec<String> {
        let list = u32::try_from(self.version)
            .ok()
            .and_then(|version| reference.checklist(&self.checklist, version))
            .or_else(|| reference.latest_checklist(&self.checklist));
        self.answers
            .iter()
            .filter(|(code, answer)| {
                let breach = list
                    .and_then(|l| l.item(code))
                    .map_or(Answer::No, |item| item.breach);
                **answer == breach
            })
            .map(|(code, _)| code.clone())
            .collect()
    }
}

/// A labour inspection, a community monitoring round or a follow-up visit to a workplace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Visit {
    /// Empty (nil) for a new record: the store gives it one.
    #[serde(skip)]
    #[cfg_attr(feature = "uniffi", uniffi(default = ""))]
    pub id: Uuid,
    #[serde(skip)]
    #[cfg_attr(feature = "uniffi", uniffi(default = ""))]
    pub version: Version,
    pub kind: VisitKind,
    pub workplace_id: Uuid,
    pub visitor_id: Uuid,
    /// The workplace's area, copied when the visit is recorded so that the visit can be
    /// indexed and replicated by area on its own.
    pub area: Area,
    /// With the phone's offset.
    pub started_at: DateTime<FixedOffset>,
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub ended_at: Option<DateTime<FixedOffset>>,
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub gps: Option<GeoPoint>,
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub workforce: Workforce,
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub checklist: ChecklistAnswers,
    /// Indicators observed, each with a note.
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub forced_labour: BTreeMap<ForcedLabourIndicator, String>,
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default = ""))]
    pub findings: String,
    #[serde(with = "set_as_map", default)]
    #[cfg_attr(feature = "uniffi", uniffi(default = []))]
    pub actions: BTreeSet<VisitAction>,
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub follow_up_due: Option<NaiveDate>,
    pub status: VisitStatus,
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default = ""))]
    pub review_comment: String,
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub reviewed_by: Option<Uuid>,
    /// Child cases opened during this visit.
    #[serde(with = "set_as_map", default)]
    #[cfg_attr(feature = "uniffi", uniffi(default = []))]
    pub children_identified: BTreeSet<Uuid>,
    /// The reference versions the record was captured with (set by the store when the record
    /// is created, kept by every update).
    #[serde(default, skip_serializing_if = "ReferencePins::is_empty")]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub captured_with: ReferencePins,
    /// The checklist's items whose answer records a breach (derived from `checklist` and each
    /// item's wording in that checklist's version, `ChecklistItem::breach`; never stored).
    #[serde(skip)]
    #[cfg_attr(feature = "uniffi", uniffi(default = []))]
    pub breaches: Vec<String>,
}

impl Visit {
    /// A new draft visit to a workplace, filed under the workplace's area.
    pub fn new(
        kind: VisitKind,
        workplace: &super::Workplace,
        visitor_id: Uuid,
        started_at: DateTime<FixedOffset>,
    ) -> Visit {
        Visit::to_workplace(
            kind,
            workplace.id,
            workplace.location.area.clone(),
            visitor_id,
            started_at,
        )
    }

    /// A new draft visit to the workplace with this id, filed under `area` (the workplace's).
    pub fn to_workplace(
        kind: VisitKind,
        workplace_id: Uuid,
        area: Area,
        visitor_id: Uuid,
        started_at: DateTime<FixedOffset>,
    ) -> Visit {
        Visit {
            id: Uuid::now_v7(),
            version: Version::default(),
            kind,
            workplace_id,
            visitor_id,
            area,
            started_at,
            ended_at: None,
            gps: None,
            workforce: Workforce::default(),
            checklist: ChecklistAnswers::default(),
            forced_labour: BTreeMap::new(),
            findings: String::new(),
            actions: BTreeSet::new(),
            follow_up_due: None,
            status: VisitStatus::Draft,
            review_comment: String::new(),
            reviewed_by: None,
            children_identified: BTreeSet::new(),
            captured_with: ReferencePins::default(),
            breaches: Vec::new(),
        }
    }

    /// The day the visit is due for its re-inspection, by the soonest of its planned days side
    /// by side (`concurrent`: one inspector cleared it, another moved it): it stays due until
    /// someone chooses, whichever the merge shows.
    pub fn due_in_conflict(&self, concurrent: &[super::Concurrent]) -> Option<NaiveDate> {
        concurrent
            .iter()
            .filter(|(field, _)| *field == "follow_up_due")
            .flat_map(|(_, values)| values)
            .filter_map(|value| serde_json::from_value::<NaiveDate>(value.clone()).ok())
            .chain(self.follow_up_due)
            .min()
    }
}

impl Record for Visit {
    const KIND: RecordKind = RecordKind::Visit;
    /// A review comment is one reviewer's: two reviews made at once are a conflict kept and
    /// shown, never one comment run into the other.
    const TEXT_FIELDS: &'static [&'static str] = &["findings"];
    const COLLECTIONS: &'static [&'static str] = &[
        "checklist.answers",
        "forced_labour",
        "actions",
        "children_identified",
    ];
    const WHOLE_VALUES: &'static [&'static str] = &["gps"];
    /// Its planned re-inspection decides its place in the due lists
    /// (`Visit::due_in_conflict`).
    const DECIDING: &'static [&'static str] = &["follow_up_due"];
    // The checklist answered names its own version (`checklist.version`).
    const PINNED: &'static [ReferenceType] = &[ReferenceType::AdministrativeAreas];
    const DECIDED_TOGETHER: &'static [&'static [&'static str]] =
        &[&["status", "reviewed_by", "review_comment"]];
    record_identity!();
    record_pins!(area);

    fn subject(&self) -> super::Subject<'_> {
        super::Subject::Visit(self)
    }

    fn derive(&mut self, reference: &ReferenceData) {
        self.breaches = self.checklist.breaches(reference);
    }

    fn free_texts(&self) -> Vec<(String, &str)> {
        let mut texts = vec![
            ("findings".to_string(), self.findings.as_str()),
            ("review_comment".to_string(), self.review_comment.as_str()),
        ];
        texts.extend(self.forced_labour.iter().map(|(indicator, note)| {
            (
                format!("forced_labour.{}", indicator.as_str()),
                note.as_str(),
            )
        }));
        texts
    }

    fn event_dates(&self) -> Vec<(String, chrono::NaiveDate)> {
        let mut dates = vec![("started_at".to_string(), self.started_at.date_naive())];
        dates.extend(
            self.ended_at
                .map(|t| ("ended_at".to_string(), t.date_naive())),
        );
        dates
    }

    fn references(&self) -> Vec<super::Reference> {
        let mut references = vec![("workplace_id", self.workplace_id, RecordKind::Workplace)];
        references.extend(
            self.children_identified
                .iter()
                .map(|id| ("children_identified", *id, RecordKind::ChildCase)),
        );
        references
    }

    fn validate(&self, reference: &ReferenceData) -> Result<(), ValidationError> {
        super::within_calendar(&self.event_dates())?;
        if self.workplace_id.is_nil() {
            return Err(ValidationError::new("workplace_id", "must be set"));
        }
        if self.visitor_id.is_nil() {
            return Err(ValidationError::new("visitor_id", "must be set"));
        }
        at_most_entries(
            "children_identified",
            self.children_identified.len(),
            MAX_CHILDREN_PER_VISIT,
        )?;
        if self.children_identified.contains(&Uuid::nil()) {
            return Err(ValidationError::new(
                "children_identified",
                "must name child cases (no empty id)",
            ));
        }
        self.area.validate("area")?;
        // A visit's day is its local one (the lists, the counts, the exports): an offset no
        // zone has would date it a day no one there lived.
        for (field, moment) in [
            ("started_at", Some(self.started_at)),
            ("ended_at", self.ended_at),
        ] {
            if moment
                .is_some_and(|m| !(-12 * 3600..=14 * 3600).contains(&m.offset().local_minus_utc()))
            {
                return Err(ValidationError::new(field, OFFSET_OF_NO_ZONE));
            }
        }
        if let Some(ended) = self.ended_at
            && ended < self.started_at
        {
            return Err(ValidationError::new(
                "ended_at",
                "must not be before started_at",
            ));
        }
        if let Some(p) = &self.gps {
            p.validate("gps")?;
        }
        self.workforce.female.validate("workforce.female")?;
        self.workforce.male.validate("workforce.male")?;
        require_count("checklist.version", self.checklist.version)?;
        if let Some(due) = self.follow_up_due
            && due < self.started_at.date_naive()
        {
            return Err(ValidationError::new(
                "follow_up_due",
                "must not be before the visit",
            ));
        }
        // Last, what the reference data decides (`records::judged_elsewhere`).
        reference.check_area(
            self.captured_with.administrative_areas.as_ref(),
            &self.area,
            "area",
        )?;
        if !self.checklist.answers.is_empty() || !self.checklist.checklist.is_empty() {
            let version = self.checklist.version.unsigned_abs();
            let Some(list) = reference.checklist(&self.checklist.checklist, version) else {
                return Err(ValidationError::new(
                    "checklist.checklist",
                    super::UNKNOWN_CHECKLIST,
                ));
            };
            if let Some(code) = self.checklist.answers.keys().find(|c| !list.has_item(c)) {
                // The code comes from the checklist definition, not from a person: safe to name.
                let field = if code.len() <= 32 && code.chars().all(|c| c.is_ascii_graphic()) {
                    format!("checklist.answers.{code}")
                } else {
                    "checklist.answers".to_string()
                };
                return Err(ValidationError::new(field, "unknown checklist item"));
            }
        }
        Ok(())
    }
}

/// The rule a visit's time with an offset past any zone's breaks.
const OFFSET_OF_NO_ZONE: &str = "must have the offset of a zone on Earth, from -12:00 to +14:00";

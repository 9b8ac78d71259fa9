//! A farm, mine, workshop or household where people work.

use super::{Record, Version, record_identity, record_pins, set_as_map};
use crate::domain::area::{Area, GeoPoint};
use crate::domain::codes::{Formality, RecordKind, ReferenceType};
use crate::domain::reference::{ReferenceData, ReferencePins};
use crate::domain::validation::{
    MAX_BUYERS_OR_SUPPLIERS, MAX_LINE_CHARS, ValidationError, at_most_entries, is_one_line,
    looks_empty, optional_line, require_line,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Location {
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub point: Option<GeoPoint>,
    pub area: Area,
}

/// A farm, mine, workshop or household where people work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Workplace {
    /// Empty (nil) for a new record: the store gives it one.
    #[serde(skip)]
    #[cfg_attr(feature = "uniffi", uniffi(default = ""))]
    pub id: Uuid,
    #[serde(skip)]
    #[cfg_attr(feature = "uniffi", uniffi(default = ""))]
    pub version: Version,
    pub name: String,
    /// A sector code from the reference data (e.g. `cocoa`).
    pub sector: String,
    pub formality: Formality,
    pub location: Location,
    #[cfg_attr(feature = "uniffi", uniffi(default = ""))]
    pub owner_name: String,
    #[cfg_attr(feature = "uniffi", uniffi(default = ""))]
    pub owner_contact: String,
    /// Names or workplace ids of the buyers of what this workplace produces.
    #[serde(with = "set_as_map", default)]
    #[cfg_attr(feature = "uniffi", uniffi(default = []))]
    pub buyers: BTreeSet<String>,
    #[serde(with = "set_as_map", default)]
    #[cfg_attr(feature = "uniffi", uniffi(default = []))]
    pub suppliers: BTreeSet<String>,
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default = ""))]
    pub notes: String,
    /// The reference versions the record was captured with (set by the store when the record
    /// is created, kept by every update).
    #[serde(default, skip_serializing_if = "ReferencePins::is_empty")]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub captured_with: ReferencePins,
}

impl Workplace {
    pub fn new(name: &str, sector: &str, formality: Formality, area: Area) -> Workplace {
        Workplace {
            id: Uuid::now_v7(),
            version: Version::default(),
            name: name.into(),
            sector: sector.into(),
            formality,
            location: Location { point: None, area },
            owner_name: String::new(),
            owner_contact: String::new(),
            buyers: BTreeSet::new(),
            suppliers: BTreeSet::new(),
            notes: String::new(),
            captured_with: ReferencePins::default(),
        }
    }
}

impl Record for Workplace {
    const KIND: RecordKind = RecordKind::Workplace;
    const TEXT_FIELDS: &'static [&'static str] = &["notes"];
    const COLLECTIONS: &'static [&'static str] = &["buyers", "suppliers"];
    const WHOLE_VALUES: &'static [&'static str] = &["location.point"];
    const PINNED: &'static [ReferenceType] =
        &[ReferenceType::Sectors, ReferenceType::AdministrativeAreas];
    record_identity!();
    record_pins!(location.area);

    fn subject(&self) -> super::Subject<'_> {
        super::Subject::Workplace(self)
    }

    fn free_texts(&self) -> Vec<(String, &str)> {
        vec![("notes".to_string(), self.notes.as_str())]
    }

    fn validate(&self, reference: &ReferenceData) -> Result<(), ValidationError> {
        require_line("name", &self.name)?;
        optional_line("owner_name", &self.owner_name, MAX_LINE_CHARS)?;
        optional_line("owner_contact", &self.owner_contact, MAX_LINE_CHARS)?;
        // Names or workplace ids, one line each; the field is named without the entry.
        for (field, entries) in [("buyers", &self.buyers), ("suppliers", &self.suppliers)] {
            at_most_entries(field, entries.len(), MAX_BUYERS_OR_SUPPLIERS)?;
            if entries
                .iter()
                .any(|e| looks_empty(e) || !is_one_line(e, MAX_LINE_CHARS))
            {
                return Err(ValidationError::new(
                    field,
                    format!(
                        "each entry must be 1 to {MAX_LINE_CHARS} characters on one line, without control or text-direction characters"
                    ),
                ));
            }
        }
        if let Some(p) = &self.location.point {
            p.validate("location.point")?;
        }
        self.location.area.validate("location.area")?;
        // Last, what the reference data decides (`records::judged_elsewhere`).
        let sectors = reference.pinned_sectors(self.captured_with.sectors.as_ref())?;
        if !sectors.iter().any(|s| s.code == self.sector) {
            return Err(ValidationError::new("sector", "unknown sector code"));
        }
        reference.check_area(
            self.captured_with.administrative_areas.as_ref(),
            &self.location.area,
            "location.area",
        )
    }
}

//! Typed field records. Each record is stored as one Automerge document (see `doc.rs`); the
//! structs here are the shape the application reads and writes.
//!
//! Collections inside a record are maps keyed by an id or a code, never lists: two devices that
//! add a referral or tick a hazard concurrently then both keep their addition, and two edits of
//! the same referral merge field by field.

use crate::classify::Classification;
use crate::error::ValidationError;
use crate::reference::{ReferenceData, ReferencePins, ReferenceType};
use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use uuid::Uuid;

/// The kinds of record a store holds. The discriminant is stored in SQLite: never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Workplace = 1,
    Visit = 2,
    ChildCase = 3,
    User = 4,
    /// Reference data published by the hub (`reference::ReferenceDocument`).
    Reference = 5,
}

impl RecordKind {
    pub const ALL: [RecordKind; 5] = [
        RecordKind::Workplace,
        RecordKind::Visit,
        RecordKind::ChildCase,
        RecordKind::User,
        RecordKind::Reference,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Workplace => "workplace",
            RecordKind::Visit => "visit",
            RecordKind::ChildCase => "child_case",
            RecordKind::User => "user",
            RecordKind::Reference => "reference",
        }
    }

    pub fn from_str_opt(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn from_i64(v: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|k| *k as i64 == v)
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The version of a record a caller read: the Automerge heads of its document. An update is
/// applied as an edit made at this version, so a field that changed meanwhile (through sync)
/// is not overwritten silently: if the caller changed it too, both values are kept as a conflict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Version(pub(crate) Vec<automerge::ChangeHash>);

impl Version {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn heads(&self) -> &[automerge::ChangeHash] {
        &self.0
    }
    /// Parses the form produced by `Display` (hex heads joined by commas).
    pub fn parse(s: &str) -> Option<Version> {
        if s.is_empty() {
            return Some(Version::default());
        }
        s.split(',')
            .map(|h| h.parse::<automerge::ChangeHash>().ok())
            .collect::<Option<Vec<_>>>()
            .map(Version)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex: Vec<String> = self.0.iter().map(|h| h.to_string()).collect();
        f.write_str(&hex.join(","))
    }
}

/// What every record kind provides to the store.
pub trait Record: Serialize + DeserializeOwned + Clone + fmt::Debug {
    const KIND: RecordKind;
    /// Dotted paths of fields held as Automerge text (`*` matches any key), so that two people's
    /// edits of a note merge character by character.
    const TEXT_FIELDS: &'static [&'static str];
    /// Dotted paths of maps whose keys are data (ids, codes): a key missing from the record is
    /// removed from the document. Keys missing from any other map are kept, so that an older app
    /// never erases a field added by a newer one.
    const COLLECTIONS: &'static [&'static str];
    /// Dotted paths of fields computed from the others by `derive` (never typed by a person).
    const DERIVED: &'static [&'static str] = &[];
    /// The types of reference data whose version the record keeps (`captured_with`).
    const PINNED: &'static [ReferenceType] = &[];

    fn id(&self) -> Uuid;
    fn set_id(&mut self, id: Uuid);
    fn version(&self) -> &Version;
    fn set_version(&mut self, version: Version);
    fn validate(&self, reference: &ReferenceData) -> Result<(), ValidationError>;
    /// Fills derived fields (such as a child case's classification) before a write.
    fn derive(&mut self, _reference: &ReferenceData) {}
    /// The reference versions the record was captured with, for kinds that keep them.
    fn pins(&self) -> Option<&ReferencePins> {
        None
    }
    fn pins_mut(&mut self) -> Option<&mut ReferencePins> {
        None
    }
    /// The country code whose reference data applies to the record.
    fn country(&self) -> Option<&str> {
        None
    }
    /// The area the record is filed under (users and reference data have none).
    fn area(&self) -> Option<&Area> {
        None
    }
    /// The record as the role matrix sees it (`rights`).
    fn subject(&self) -> crate::rights::Subject<'_> {
        crate::rights::Subject::Administered(Self::KIND)
    }
}

/// The `Record` methods of kinds that keep the reference versions they were captured with.
macro_rules! record_pins {
    ($($area:ident).+) => {
        fn pins(&self) -> Option<&ReferencePins> {
            Some(&self.captured_with)
        }
        fn pins_mut(&mut self) -> Option<&mut ReferencePins> {
            Some(&mut self.captured_with)
        }
        fn country(&self) -> Option<&str> {
            Some(&self.$($area).+.country)
        }
        fn area(&self) -> Option<&Area> {
            Some(&self.$($area).+)
        }
    };
}

macro_rules! record_identity {
    () => {
        fn id(&self) -> Uuid {
            self.id
        }
        fn set_id(&mut self, id: Uuid) {
            self.id = id;
        }
        fn version(&self) -> &Version {
            &self.version
        }
        fn set_version(&mut self, version: Version) {
            self.version = version;
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Shared value types

/// An administrative area, by the codes of each level (codes are unique across the country:
/// a district's code is not reused in another region).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Area {
    pub country: String,
    pub region: String,
    pub district: String,
    pub community: String,
}

impl Area {
    pub fn new(country: &str, region: &str, district: &str, community: &str) -> Area {
        Area {
            country: country.into(),
            region: region.into(),
            district: district.into(),
            community: community.into(),
        }
    }

    /// The codes of every level, from the country down.
    pub fn codes(&self) -> [&str; 4] {
        [&self.country, &self.region, &self.district, &self.community]
    }

    /// The code of one level.
    pub fn code_at(&self, level: crate::reference::AreaLevel) -> &str {
        use crate::reference::AreaLevel;
        match level {
            AreaLevel::Country => &self.country,
            AreaLevel::Region => &self.region,
            AreaLevel::District => &self.district,
            AreaLevel::Community => &self.community,
        }
    }

    fn validate(&self, field: &str) -> Result<(), ValidationError> {
        for (level, code) in ["country", "region", "district", "community"]
            .iter()
            .zip(self.codes())
        {
            if code.trim().is_empty() {
                return Err(ValidationError::new(
                    format!("{field}.{level}"),
                    "must not be empty",
                ));
            }
        }
        Ok(())
    }
}

/// A filter on the area of records: every record whose area has this code at this level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AreaFilter {
    Country(String),
    Region(String),
    District(String),
    Community(String),
}

impl AreaFilter {
    /// The index column of the level, and the code to match in it.
    pub(crate) fn column_and_code(&self) -> (&'static str, &str) {
        match self {
            AreaFilter::Country(c) => ("country", c),
            AreaFilter::Region(c) => ("region", c),
            AreaFilter::District(c) => ("district", c),
            AreaFilter::Community(c) => ("community", c),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    pub latitude: f64,
    pub longitude: f64,
    /// Horizontal accuracy in metres, as reported by the phone.
    pub accuracy_m: Option<f64>,
}

impl GeoPoint {
    fn validate(&self, field: &str) -> Result<(), ValidationError> {
        if !self.latitude.is_finite() || !(-90.0..=90.0).contains(&self.latitude) {
            return Err(ValidationError::new(
                format!("{field}.latitude"),
                "must be between -90 and 90",
            ));
        }
        if !self.longitude.is_finite() || !(-180.0..=180.0).contains(&self.longitude) {
            return Err(ValidationError::new(
                format!("{field}.longitude"),
                "must be between -180 and 180",
            ));
        }
        if let Some(a) = self.accuracy_m
            && (!a.is_finite() || a < 0.0)
        {
            return Err(ValidationError::new(
                format!("{field}.accuracy_m"),
                "must be a non-negative number of metres",
            ));
        }
        Ok(())
    }
}

fn require_text(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        Err(ValidationError::new(field, "must not be empty"))
    } else {
        Ok(())
    }
}

/// Sets are stored as maps from the element to `true`: concurrent additions then merge.
pub(crate) mod set_as_map {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::{BTreeMap, BTreeSet};

    pub fn serialize<S: Serializer, T: Serialize>(
        set: &BTreeSet<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(set.iter().map(|k| (k, true)))
    }

    pub fn deserialize<'de, D, T>(d: D) -> Result<BTreeSet<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de> + Ord,
    {
        let map = BTreeMap::<T, bool>::deserialize(d)?;
        Ok(map
            .into_iter()
            .filter(|(_, v)| *v)
            .map(|(k, _)| k)
            .collect())
    }
}

// ---------------------------------------------------------------------------------------------
// Workplace

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Formality {
    Formal,
    Informal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub point: Option<GeoPoint>,
    pub area: Area,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workplace {
    #[serde(skip)]
    pub id: Uuid,
    #[serde(skip)]
    pub version: Version,
    pub name: String,
    /// A sector code from the reference data (e.g. `cocoa`).
    pub sector: String,
    pub formality: Formality,
    pub location: Location,
    pub owner_name: String,
    pub owner_contact: String,
    /// Names or workplace ids of the buyers of what this workplace produces.
    #[serde(with = "set_as_map", default)]
    pub buyers: BTreeSet<String>,
    #[serde(with = "set_as_map", default)]
    pub suppliers: BTreeSet<String>,
    #[serde(default)]
    pub notes: String,
    /// The reference versions the record was captured with (set by the store when the record
    /// is created, kept by every update).
    #[serde(default, skip_serializing_if = "ReferencePins::is_empty")]
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
    const PINNED: &'static [ReferenceType] =
        &[ReferenceType::Sectors, ReferenceType::AdministrativeAreas];
    record_identity!();
    record_pins!(location.area);

    fn subject(&self) -> crate::rights::Subject<'_> {
        crate::rights::Subject::Workplace(self)
    }

    fn validate(&self, reference: &ReferenceData) -> Result<(), ValidationError> {
        require_text("name", &self.name)?;
        let sectors = reference.pinned_sectors(self.captured_with.sectors.as_ref())?;
        if !sectors.iter().any(|s| s.code == self.sector) {
            return Err(ValidationError::new("sector", "unknown sector code"));
        }
        if let Some(p) = &self.location.point {
            p.validate("location.point")?;
        }
        self.location.area.validate("location.area")?;
        reference.check_area(
            self.captured_with.administrative_areas.as_ref(),
            &self.location.area,
            "location.area",
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Visit

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitKind {
    LabourInspection,
    CommunityMonitoring,
    FollowUp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitStatus {
    Draft,
    Submitted,
    Validated,
    Returned,
}

impl VisitStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VisitStatus::Draft => "draft",
            VisitStatus::Submitted => "submitted",
            VisitStatus::Validated => "validated",
            VisitStatus::Returned => "returned",
        }
    }

    /// draft → submitted → validated | returned; a returned visit is corrected and submitted
    /// again.
    pub fn can_become(self, next: VisitStatus) -> bool {
        use VisitStatus::*;
        self == next
            || matches!(
                (self, next),
                (Draft, Submitted)
                    | (Submitted, Validated)
                    | (Submitted, Returned)
                    | (Returned, Submitted)
            )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Yes,
    No,
    NotApplicable,
}

/// Counts of workers by age band.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgeBands {
    pub under_12: u32,
    pub age_12_14: u32,
    pub age_15_17: u32,
    pub adults: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workforce {
    pub female: AgeBands,
    pub male: AgeBands,
}

/// Answers to a named, versioned checklist, keyed by item code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecklistAnswers {
    pub checklist: String,
    pub version: u32,
    #[serde(default)]
    pub answers: BTreeMap<String, Answer>,
}

/// The ILO's 11 indicators of forced labour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForcedLabourIndicator {
    AbuseOfVulnerability,
    Deception,
    RestrictionOfMovement,
    Isolation,
    PhysicalAndSexualViolence,
    IntimidationAndThreats,
    RetentionOfIdentityDocuments,
    WithholdingOfWages,
    DebtBondage,
    AbusiveWorkingAndLivingConditions,
    ExcessiveOvertime,
}

impl ForcedLabourIndicator {
    pub const ALL: [ForcedLabourIndicator; 11] = [
        Self::AbuseOfVulnerability,
        Self::Deception,
        Self::RestrictionOfMovement,
        Self::Isolation,
        Self::PhysicalAndSexualViolence,
        Self::IntimidationAndThreats,
        Self::RetentionOfIdentityDocuments,
        Self::WithholdingOfWages,
        Self::DebtBondage,
        Self::AbusiveWorkingAndLivingConditions,
        Self::ExcessiveOvertime,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitAction {
    None,
    Advice,
    Warning,
    Order,
    Referral,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Visit {
    #[serde(skip)]
    pub id: Uuid,
    #[serde(skip)]
    pub version: Version,
    pub kind: VisitKind,
    pub workplace_id: Uuid,
    pub visitor_id: Uuid,
    /// The workplace's area, copied when the visit is recorded so that the visit can be
    /// indexed and replicated by area on its own.
    pub area: Area,
    pub started_at: DateTime<FixedOffset>,
    pub ended_at: Option<DateTime<FixedOffset>>,
    pub gps: Option<GeoPoint>,
    #[serde(default)]
    pub workforce: Workforce,
    #[serde(default)]
    pub checklist: ChecklistAnswers,
    /// Indicators observed, each with a note.
    #[serde(default)]
    pub forced_labour: BTreeMap<ForcedLabourIndicator, String>,
    #[serde(default)]
    pub findings: String,
    #[serde(with = "set_as_map", default)]
    pub actions: BTreeSet<VisitAction>,
    pub follow_up_due: Option<NaiveDate>,
    pub status: VisitStatus,
    #[serde(default)]
    pub review_comment: String,
    pub reviewed_by: Option<Uuid>,
    /// Child cases opened during this visit.
    #[serde(with = "set_as_map", default)]
    pub children_identified: BTreeSet<Uuid>,
    /// The reference versions the record was captured with (set by the store when the record
    /// is created, kept by every update).
    #[serde(default, skip_serializing_if = "ReferencePins::is_empty")]
    pub captured_with: ReferencePins,
}

impl Visit {
    pub fn new(
        kind: VisitKind,
        workplace: &Workplace,
        visitor_id: Uuid,
        started_at: DateTime<FixedOffset>,
    ) -> Visit {
        Visit {
            id: Uuid::now_v7(),
            version: Version::default(),
            kind,
            workplace_id: workplace.id,
            visitor_id,
            area: workplace.location.area.clone(),
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
        }
    }
}

impl Record for Visit {
    const KIND: RecordKind = RecordKind::Visit;
    const TEXT_FIELDS: &'static [&'static str] = &["findings", "review_comment"];
    const COLLECTIONS: &'static [&'static str] = &[
        "checklist.answers",
        "forced_labour",
        "actions",
        "children_identified",
    ];
    // The checklist answered names its own version (`checklist.version`).
    const PINNED: &'static [ReferenceType] = &[ReferenceType::AdministrativeAreas];
    record_identity!();
    record_pins!(area);

    fn subject(&self) -> crate::rights::Subject<'_> {
        crate::rights::Subject::Visit(self)
    }

    fn validate(&self, reference: &ReferenceData) -> Result<(), ValidationError> {
        if self.workplace_id.is_nil() {
            return Err(ValidationError::new("workplace_id", "must be set"));
        }
        if self.visitor_id.is_nil() {
            return Err(ValidationError::new("visitor_id", "must be set"));
        }
        self.area.validate("area")?;
        reference.check_area(
            self.captured_with.administrative_areas.as_ref(),
            &self.area,
            "area",
        )?;
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
        if !self.checklist.answers.is_empty() || !self.checklist.checklist.is_empty() {
            let Some(list) = reference.checklist(&self.checklist.checklist, self.checklist.version)
            else {
                return Err(ValidationError::new(
                    "checklist.checklist",
                    "unknown checklist or checklist version",
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
        if let Some(due) = self.follow_up_due
            && due < self.started_at.date_naive()
        {
            return Err(ValidationError::new(
                "follow_up_due",
                "must not be before the visit",
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Child case

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    Female,
    Male,
}

/// How a child's age was established when no date of birth is known, or how the date was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgeBasis {
    BirthCertificate,
    IdentityDocument,
    SchoolRecord,
    DeclaredByGuardian,
    DeclaredByChild,
    ObservedByMonitor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchoolStatus {
    Attending,
    AttendingIrregularly,
    DroppedOut,
    NeverEnrolled,
    Unknown,
}

/// C182 art. 3 (a)–(c); (d), hazardous work, is found from the hazards observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorstForm {
    SlaveryOrTrafficking,
    DebtBondage,
    ForcedLabour,
    ArmedConflict,
    SexualExploitation,
    IllicitActivities,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    Identified,
    Referred,
    ReceivingServices,
    Withdrawn,
    Prevented,
    Closed,
}

impl CaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Identified => "identified",
            CaseStatus::Referred => "referred",
            CaseStatus::ReceivingServices => "receiving_services",
            CaseStatus::Withdrawn => "withdrawn",
            CaseStatus::Prevented => "prevented",
            CaseStatus::Closed => "closed",
        }
    }

    /// identified → referred → receiving services → withdrawn | prevented → closed.
    pub fn can_become(self, next: CaseStatus) -> bool {
        use CaseStatus::*;
        self == next
            || matches!(
                (self, next),
                (Identified, Referred)
                    | (Referred, ReceivingServices)
                    | (ReceivingServices, Withdrawn)
                    | (ReceivingServices, Prevented)
                    | (Withdrawn, Closed)
                    | (Prevented, Closed)
            )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKind {
    Education,
    Health,
    SocialProtection,
    LegalOrPolice,
    Vocational,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Referral {
    pub service: ServiceKind,
    pub provider: String,
    pub date: NaiveDate,
    #[serde(default)]
    pub outcome: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowUpSituation {
    StillWorking,
    AtRisk,
    Withdrawn,
    InSchool,
    NotFound,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FollowUp {
    pub date: NaiveDate,
    pub situation: FollowUpSituation,
    #[serde(default)]
    pub notes: String,
    pub next_due: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildCase {
    #[serde(skip)]
    pub id: Uuid,
    #[serde(skip)]
    pub version: Version,
    /// Pseudonymous code, the only identifier that appears in reports.
    pub case_code: String,
    /// The child's name: sensitive, never exported without the right.
    pub name: String,
    pub sex: Sex,
    pub date_of_birth: Option<NaiveDate>,
    pub estimated_age: Option<u32>,
    pub age_basis: AgeBasis,
    #[serde(default)]
    pub guardian: String,
    #[serde(default)]
    pub household: String,
    pub area: Area,
    pub workplace_id: Option<Uuid>,
    pub identified_on_visit: Option<Uuid>,
    pub identified_on: NaiveDate,
    pub identified_by: Uuid,
    pub school: SchoolStatus,
    #[serde(default)]
    pub activity: String,
    #[serde(with = "set_as_map", default)]
    pub tasks: BTreeSet<String>,
    pub hours_per_week: u32,
    pub night_work: bool,
    /// Codes from the hazardous work list of the rule set.
    #[serde(with = "set_as_map", default)]
    pub hazards: BTreeSet<String>,
    #[serde(with = "set_as_map", default)]
    pub worst_forms: BTreeSet<WorstForm>,
    /// Computed on every write from the facts above by the store's rule set.
    pub classification: Option<Classification>,
    pub status: CaseStatus,
    #[serde(default)]
    pub referrals: BTreeMap<Uuid, Referral>,
    #[serde(default)]
    pub followups: BTreeMap<Uuid, FollowUp>,
    #[serde(default)]
    pub notes: String,
    /// The day the child was verified withdrawn or prevented: the start of the follow-up
    /// schedule. Never cleared, so it is left out of the document when unset (an app that does
    /// not know the field cannot erase it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediated_on: Option<NaiveDate>,
    /// The next follow-up the rule set's schedule plans after `remediated_on` (derived on every
    /// write from `remediated_on`, the follow-ups recorded and the child's age).
    #[serde(default)]
    pub follow_up_due: Option<NaiveDate>,
    /// Set on a duplicate registration: the case it was merged into. The duplicate keeps its
    /// status and history; lists, alerts, due lists and indicators leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<Uuid>,
    /// The duplicates merged into this case.
    #[serde(
        with = "set_as_map",
        default,
        skip_serializing_if = "BTreeSet::is_empty"
    )]
    pub merged_from: BTreeSet<Uuid>,
    /// The reference versions the case was captured with: its country profile classifies it
    /// for good (set by the store when the case is created, kept by every update).
    #[serde(default, skip_serializing_if = "ReferencePins::is_empty")]
    pub captured_with: ReferencePins,
}

impl ChildCase {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        case_code: &str,
        name: &str,
        sex: Sex,
        area: Area,
        identified_on: NaiveDate,
        identified_by: Uuid,
    ) -> ChildCase {
        ChildCase {
            id: Uuid::now_v7(),
            version: Version::default(),
            case_code: case_code.into(),
            name: name.into(),
            sex,
            date_of_birth: None,
            estimated_age: None,
            age_basis: AgeBasis::DeclaredByGuardian,
            guardian: String::new(),
            household: String::new(),
            area,
            workplace_id: None,
            identified_on_visit: None,
            identified_on,
            identified_by,
            school: SchoolStatus::Unknown,
            activity: String::new(),
            tasks: BTreeSet::new(),
            hours_per_week: 0,
            night_work: false,
            hazards: BTreeSet::new(),
            worst_forms: BTreeSet::new(),
            classification: None,
            status: CaseStatus::Identified,
            referrals: BTreeMap::new(),
            followups: BTreeMap::new(),
            notes: String::new(),
            remediated_on: None,
            follow_up_due: None,
            merged_into: None,
            merged_from: BTreeSet::new(),
            captured_with: ReferencePins::default(),
        }
    }

    /// Age in whole years on a date: from the date of birth when known, else the estimate
    /// (which was made on the day of identification, and is aged by the years since).
    pub fn age_on(&self, date: NaiveDate) -> Option<u32> {
        if let Some(dob) = self.date_of_birth {
            return date.years_since(dob);
        }
        let estimate = self.estimated_age?;
        Some(estimate + date.years_since(self.identified_on).unwrap_or(0))
    }

    /// The day the child reaches `age`: from the date of birth, else from the estimate made on
    /// the day of identification (the child is taken to have just reached the estimated age).
    pub fn reaches_age_on(&self, age: u32) -> Option<NaiveDate> {
        use chrono::Months;
        let (from, years) = match (self.date_of_birth, self.estimated_age) {
            (Some(dob), _) => (dob, age),
            (None, Some(estimate)) => (self.identified_on, age.saturating_sub(estimate)),
            (None, None) => return None,
        };
        from.checked_add_months(Months::new(years.checked_mul(12)?))
    }

    /// The next follow-up due: the one the schedule plans after remediation (it goes on, yearly,
    /// after the case is closed, until the child's 18th birthday); for a case without a
    /// remediation date, the one planned at the latest follow-up, or none once closed. A
    /// duplicate merged into another case has none.
    pub fn next_follow_up_due(&self) -> Option<NaiveDate> {
        if self.merged_into.is_some() {
            return None;
        }
        if self.follow_up_due.is_some() {
            return self.follow_up_due;
        }
        if self.status == CaseStatus::Closed {
            return None;
        }
        self.followups
            .values()
            .max_by_key(|f| f.date)
            .and_then(|f| f.next_due)
    }
}

impl Record for ChildCase {
    const KIND: RecordKind = RecordKind::ChildCase;
    const TEXT_FIELDS: &'static [&'static str] =
        &["notes", "referrals.*.outcome", "followups.*.notes"];
    const COLLECTIONS: &'static [&'static str] = &[
        "tasks",
        "hazards",
        "worst_forms",
        "referrals",
        "followups",
        "merged_from",
    ];
    // Computed from the other fields by `derive` on every write, and again whenever the record
    // is read or indexed: a concurrent value of theirs is never a conflict to show.
    const DERIVED: &'static [&'static str] = &["classification", "follow_up_due"];
    const PINNED: &'static [ReferenceType] = &[
        ReferenceType::CountryProfile,
        ReferenceType::ReferralServices,
        ReferenceType::AdministrativeAreas,
    ];
    record_identity!();
    record_pins!(area);

    fn subject(&self) -> crate::rights::Subject<'_> {
        crate::rights::Subject::ChildCase(self)
    }

    fn validate(&self, reference: &ReferenceData) -> Result<(), ValidationError> {
        require_text("case_code", &self.case_code)?;
        require_text("name", &self.name)?;
        self.area.validate("area")?;
        reference.check_area(
            self.captured_with.administrative_areas.as_ref(),
            &self.area,
            "area",
        )?;
        let rules = reference.rule_set_of(self)?;
        if self.identified_by.is_nil() {
            return Err(ValidationError::new("identified_by", "must be set"));
        }
        match (self.date_of_birth, self.estimated_age) {
            (None, None) => {
                return Err(ValidationError::new(
                    "date_of_birth",
                    "a date of birth or an estimated age is required",
                ));
            }
            (Some(dob), _) => {
                if dob > self.identified_on {
                    return Err(ValidationError::new(
                        "date_of_birth",
                        "must not be after the day the child was identified",
                    ));
                }
                if self.age_on(self.identified_on).is_none_or(|a| a > 17) {
                    return Err(ValidationError::new(
                        "date_of_birth",
                        "age when identified must be between 0 and 17",
                    ));
                }
            }
            (None, Some(age)) => {
                if age > 17 {
                    return Err(ValidationError::new(
                        "estimated_age",
                        "must be between 0 and 17",
                    ));
                }
            }
        }
        if self.hours_per_week > 168 {
            return Err(ValidationError::new(
                "hours_per_week",
                "must be between 0 and 168",
            ));
        }
        if let Some(code) = self.hazards.iter().find(|h| !rules.has_hazard(h)) {
            let field = if code.len() <= 32 && code.chars().all(|c| c.is_ascii_graphic()) {
                format!("hazards.{code}")
            } else {
                "hazards".to_string()
            };
            return Err(ValidationError::new(field, "unknown hazard code"));
        }
        // A directory that lists providers lists every provider a child may be referred to:
        // the referral then names one by its code.
        let directory = reference
            .pinned_referrals(self.captured_with.referral_services.as_ref())?
            .filter(|d| !d.providers.is_empty());
        for (id, r) in &self.referrals {
            require_text(&format!("referrals.{id}.provider"), &r.provider)?;
            if let Some(directory) = directory {
                match directory.provider(&r.provider) {
                    None => {
                        return Err(ValidationError::new(
                            format!("referrals.{id}.provider"),
                            "not a provider code of the referral directory",
                        ));
                    }
                    Some(p) if p.service != r.service => {
                        return Err(ValidationError::new(
                            format!("referrals.{id}.service"),
                            "the provider does not offer this service",
                        ));
                    }
                    Some(_) => {}
                }
            }
            if r.date < self.identified_on {
                return Err(ValidationError::new(
                    format!("referrals.{id}.date"),
                    "must not be before the child was identified",
                ));
            }
        }
        if let Some(d) = self.remediated_on
            && d < self.identified_on
        {
            return Err(ValidationError::new(
                "remediated_on",
                "must not be before the child was identified",
            ));
        }
        if self.merged_into == Some(self.id) || self.merged_from.contains(&self.id) {
            return Err(ValidationError::new(
                "merged_into",
                "a case cannot be merged with itself",
            ));
        }
        for (id, f) in &self.followups {
            if f.date < self.identified_on {
                return Err(ValidationError::new(
                    format!("followups.{id}.date"),
                    "must not be before the child was identified",
                ));
            }
            if let Some(next) = f.next_due
                && next < f.date
            {
                return Err(ValidationError::new(
                    format!("followups.{id}.next_due"),
                    "must not be before the follow-up's date",
                ));
            }
        }
        Ok(())
    }

    /// With the profile the case was captured with. If this device does not know that version
    /// yet, the derived fields are left as they are and validation says why.
    fn derive(&mut self, reference: &ReferenceData) {
        if let Ok(rules) = reference.rule_set_of(self) {
            self.classification = Some(rules.classify(self));
            self.follow_up_due = rules.next_follow_up(self);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Users

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Inspector,
    CommunityMonitor,
    Supervisor,
    /// The hub's administrator (users, devices, reference data, in the hub's console): receives
    /// and changes no field record. Last, so that the others keep their discriminants.
    Administrator,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    #[serde(skip)]
    pub id: Uuid,
    #[serde(skip)]
    pub version: Version,
    pub name: String,
    pub role: Role,
    /// Codes of the areas assigned (communities for a monitor, a district for an inspector, a
    /// region for a supervisor): every record whose area has one of these codes at the level
    /// the country's area tree gives the code.
    #[serde(with = "set_as_map", default)]
    pub areas: BTreeSet<String>,
    pub active: bool,
}

impl User {
    pub fn new(name: &str, role: Role, areas: &[&str]) -> User {
        User {
            id: Uuid::now_v7(),
            version: Version::default(),
            name: name.into(),
            role,
            areas: areas.iter().map(|a| a.to_string()).collect(),
            active: true,
        }
    }

    /// Whether an area lies within this user's assignment: each code at the level the area
    /// trees in `reference` give it (`rights::AreaScope`; a code in no tree covers nothing).
    pub fn covers(&self, area: &Area, reference: &ReferenceData) -> bool {
        crate::rights::AreaScope::resolve(&self.areas, reference).covers(area)
    }
}

impl Record for User {
    const KIND: RecordKind = RecordKind::User;
    const TEXT_FIELDS: &'static [&'static str] = &[];
    const COLLECTIONS: &'static [&'static str] = &["areas"];
    record_identity!();

    fn validate(&self, _reference: &ReferenceData) -> Result<(), ValidationError> {
        require_text("name", &self.name)?;
        if self.areas.iter().any(|a| a.trim().is_empty()) {
            return Err(ValidationError::new(
                "areas",
                "an area code must not be empty",
            ));
        }
        Ok(())
    }
}

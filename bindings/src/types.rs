//! The records the bindings exchange with Kotlin, Swift and Python, and every conversion between
//! them and the core's types (this module converts the stores' records and queries; `monitoring`,
//! `reference` and `vault` hold the records of their own calls, with their conversions).
//!
//! Conventions, the same in every language:
//! - **Ids** are UUID strings (`"0195f0c2-…"`). A new record's `id` may be left empty: the store
//!   gives it one. The `new_*` functions fill it in already.
//! - **Dates** are ISO 8601 strings, `"2026-03-02"`; **instants** are RFC 3339 strings with an
//!   offset, `"2026-03-02T09:00:00+00:00"` (a visit keeps the phone's offset; summaries are UTC
//!   with a `Z`). Plain strings map to `String` in Kotlin and Swift and `str` in Python with no
//!   extra dependency (`java.time` needs API 26 or desugaring on Android). A malformed value is a
//!   `Validation` error naming the field.
//! - **`version`** is opaque: the version of a record as it was read. Pass back what `get_*`
//!   returned; `update_*` then changes only the fields you changed, at that version.
//! - **Numbers** are signed (`Int`/`Long` in Kotlin): a negative count is a `Validation` error.
//! - **Sets** are lists (sorted); maps keyed by a code (checklist answers, forced-labour notes)
//!   are maps; referrals and follow-ups are lists of records with their own `id`.

use crate::error::{Result, VigieError};
use crate::reference::ReferenceVersions;
use chrono::{DateTime, FixedOffset, NaiveDate, SecondsFormat, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use uuid::Uuid;
use vigie_core as core;
use vigie_core::DocumentLimit;
use vigie_core::sync::Refusal;
use vigie_core::{
    AgeBasis, Answer, Area, CaseStatus, ClassificationOutcome, FollowUpSituation,
    ForcedLabourIndicator, Formality, GeoPoint, Location, RecordKind, Role, SchoolStatus,
    ServiceKind, Sex, VisitAction, VisitKind, VisitStatus, WorstForm,
};

// ---------------------------------------------------------------------------------------------
// The core's plain enums and value records, exposed as they are.

#[uniffi::remote(Enum)]
pub enum RecordKind {
    Workplace,
    Visit,
    ChildCase,
    User,
    Reference,
}

#[uniffi::remote(Enum)]
pub enum Formality {
    Formal,
    Informal,
}

#[uniffi::remote(Enum)]
pub enum VisitKind {
    LabourInspection,
    CommunityMonitoring,
    FollowUp,
}

#[uniffi::remote(Enum)]
pub enum VisitStatus {
    Draft,
    Submitted,
    Validated,
    Returned,
}

#[uniffi::remote(Enum)]
pub enum Answer {
    Yes,
    No,
    NotApplicable,
}

#[uniffi::remote(Enum)]
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

#[uniffi::remote(Enum)]
pub enum VisitAction {
    None,
    Advice,
    Warning,
    Order,
    Referral,
}

#[uniffi::remote(Enum)]
pub enum Sex {
    Female,
    Male,
}

#[uniffi::remote(Enum)]
pub enum AgeBasis {
    BirthCertificate,
    IdentityDocument,
    SchoolRecord,
    DeclaredByGuardian,
    DeclaredByChild,
    ObservedByMonitor,
}

#[uniffi::remote(Enum)]
pub enum SchoolStatus {
    Attending,
    AttendingIrregularly,
    DroppedOut,
    NeverEnrolled,
    Unknown,
}

#[uniffi::remote(Enum)]
pub enum WorstForm {
    SlaveryOrTrafficking,
    DebtBondage,
    ForcedLabour,
    ArmedConflict,
    SexualExploitation,
    IllicitActivities,
}

#[uniffi::remote(Enum)]
pub enum CaseStatus {
    Identified,
    Referred,
    ReceivingServices,
    Withdrawn,
    Prevented,
    Closed,
}

#[uniffi::remote(Enum)]
pub enum ServiceKind {
    Education,
    Health,
    SocialProtection,
    LegalOrPolice,
    Vocational,
}

#[uniffi::remote(Enum)]
pub enum FollowUpSituation {
    StillWorking,
    AtRisk,
    Withdrawn,
    InSchool,
    NotFound,
}

#[uniffi::remote(Enum)]
pub enum Role {
    Inspector,
    CommunityMonitor,
    Supervisor,
    Administrator,
}

#[uniffi::remote(Enum)]
pub enum ClassificationOutcome {
    NotChildLabour,
    ChildLabour,
    HazardousChildLabour,
    WorstFormSuspected,
}

#[uniffi::remote(Enum)]
pub enum Refusal {
    OutOfScope,
    KindNotAllowed,
    ForeignChanges,
    MissingHistory,
    Damaged,
    Invalid,
    WrongKind,
    OverLimit { limit: DocumentLimit },
    BreaksValidation,
    UnknownReference,
    AreaNotInTree,
    StepNotAllowed,
    WrongAuthor,
}

#[uniffi::remote(Enum)]
pub enum DocumentLimit {
    Bytes,
    Depth,
    Operations,
    Changes,
    TextLength,
}

#[uniffi::remote(Record)]
pub struct Area {
    pub country: String,
    pub region: String,
    pub district: String,
    pub community: String,
}

#[uniffi::remote(Record)]
pub struct GeoPoint {
    pub latitude: f64,
    pub longitude: f64,
    #[uniffi(default = None)]
    pub accuracy_m: Option<f64>,
}

#[uniffi::remote(Record)]
pub struct Location {
    #[uniffi(default = None)]
    pub point: Option<GeoPoint>,
    pub area: Area,
}

// ---------------------------------------------------------------------------------------------
// Parsing and formatting of ids, dates, versions and counts.

pub(crate) fn parse_id(field: &str, text: &str) -> Result<Uuid> {
    Uuid::try_parse(text.trim()).map_err(|_| VigieError::validation(field, "must be a UUID"))
}

/// A record's own id: empty means "new, give it one".
fn parse_record_id(text: &str) -> Result<Uuid> {
    if text.trim().is_empty() {
        Ok(Uuid::nil())
    } else {
        parse_id("id", text)
    }
}

fn parse_opt_id(field: &str, text: &Option<String>) -> Result<Option<Uuid>> {
    text.as_deref().map(|t| parse_id(field, t)).transpose()
}

fn parse_ids<T: Ord>(
    field: &str,
    texts: &[String],
    wrap: impl Fn(Uuid) -> T,
) -> Result<BTreeSet<T>> {
    texts
        .iter()
        .map(|t| parse_id(field, t).map(&wrap))
        .collect()
}

pub(crate) fn parse_date(field: &str, text: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| VigieError::validation(field, "must be a date written YYYY-MM-DD"))
}

fn parse_opt_date(field: &str, text: &Option<String>) -> Result<Option<NaiveDate>> {
    text.as_deref().map(|t| parse_date(field, t)).transpose()
}

pub(crate) fn parse_instant(field: &str, text: &str) -> Result<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(text.trim()).map_err(|_| {
        VigieError::validation(
            field,
            "must be an RFC 3339 date and time with an offset, e.g. 2026-03-02T09:00:00+00:00",
        )
    })
}

fn parse_opt_instant(field: &str, text: &Option<String>) -> Result<Option<DateTime<FixedOffset>>> {
    text.as_deref().map(|t| parse_instant(field, t)).transpose()
}

fn parse_opt_utc(field: &str, text: &Option<String>) -> Result<Option<DateTime<Utc>>> {
    Ok(parse_opt_instant(field, text)?.map(|t| t.with_timezone(&Utc)))
}

pub(crate) fn format_date(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

fn format_instant(t: DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

pub(crate) fn format_utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_version(text: &str) -> Result<core::Version> {
    core::Version::parse(text.trim()).ok_or_else(|| {
        VigieError::validation(
            "version",
            "must be a version returned by this store, unchanged",
        )
    })
}

fn count(field: &str, n: i32) -> Result<u32> {
    u32::try_from(n).map_err(|_| VigieError::validation(field, "must not be negative"))
}

fn signed(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

pub(crate) fn long(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn sorted_strings(set: BTreeSet<String>) -> Vec<String> {
    set.into_iter().collect()
}

// ---------------------------------------------------------------------------------------------
// Workplace

/// A farm, mine, workshop or household where people work.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Workplace {
    #[uniffi(default = "")]
    pub id: String,
    #[uniffi(default = "")]
    pub version: String,
    pub name: String,
    /// A sector code from `reference_sectors()` (e.g. `cocoa`).
    pub sector: String,
    pub formality: Formality,
    pub location: Location,
    #[uniffi(default = "")]
    pub owner_name: String,
    #[uniffi(default = "")]
    pub owner_contact: String,
    #[uniffi(default = [])]
    pub buyers: Vec<String>,
    #[uniffi(default = [])]
    pub suppliers: Vec<String>,
    #[uniffi(default = "")]
    pub notes: String,
    /// The reference versions the workplace was captured with (set by the store; read-only).
    #[uniffi(default)]
    pub captured_with: ReferenceVersions,
}

impl From<core::Workplace> for Workplace {
    fn from(w: core::Workplace) -> Self {
        Workplace {
            id: w.id.to_string(),
            version: w.version.to_string(),
            name: w.name,
            sector: w.sector,
            formality: w.formality,
            location: w.location,
            owner_name: w.owner_name,
            owner_contact: w.owner_contact,
            buyers: sorted_strings(w.buyers),
            suppliers: sorted_strings(w.suppliers),
            notes: w.notes,
            captured_with: w.captured_with.into(),
        }
    }
}

impl Workplace {
    pub(crate) fn into_core(self) -> Result<core::Workplace> {
        Ok(core::Workplace {
            id: parse_record_id(&self.id)?,
            version: parse_version(&self.version)?,
            name: self.name,
            sector: self.sector,
            formality: self.formality,
            location: self.location,
            owner_name: self.owner_name,
            owner_contact: self.owner_contact,
            buyers: self.buyers.into_iter().collect(),
            suppliers: self.suppliers.into_iter().collect(),
            notes: self.notes,
            // The store sets it on creation and keeps the stored one on update.
            captured_with: Default::default(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Visit

/// Counts of workers by age band.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, uniffi::Record)]
pub struct AgeBands {
    #[uniffi(default = 0)]
    pub under_12: i32,
    #[uniffi(default = 0)]
    pub age_12_14: i32,
    #[uniffi(default = 0)]
    pub age_15_17: i32,
    #[uniffi(default = 0)]
    pub adults: i32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, uniffi::Record)]
pub struct Workforce {
    #[uniffi(default)]
    pub female: AgeBands,
    #[uniffi(default)]
    pub male: AgeBands,
}

/// Answers to a named, versioned checklist (see `reference_checklists()`), keyed by item code.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct ChecklistAnswers {
    #[uniffi(default = "")]
    pub checklist: String,
    #[uniffi(default = 0)]
    pub version: i32,
    #[uniffi(default)]
    pub answers: HashMap<String, Answer>,
}

/// A labour inspection, a community monitoring round or a follow-up visit to a workplace.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Visit {
    #[uniffi(default = "")]
    pub id: String,
    #[uniffi(default = "")]
    pub version: String,
    pub kind: VisitKind,
    pub workplace_id: String,
    pub visitor_id: String,
    /// The workplace's area, copied when the visit is recorded.
    pub area: Area,
    /// RFC 3339, with the phone's offset.
    pub started_at: String,
    #[uniffi(default = None)]
    pub ended_at: Option<String>,
    #[uniffi(default = None)]
    pub gps: Option<GeoPoint>,
    #[uniffi(default)]
    pub workforce: Workforce,
    #[uniffi(default)]
    pub checklist: ChecklistAnswers,
    /// Forced-labour indicators observed, each with a note.
    #[uniffi(default)]
    pub forced_labour: HashMap<ForcedLabourIndicator, String>,
    #[uniffi(default = "")]
    pub findings: String,
    #[uniffi(default = [])]
    pub actions: Vec<VisitAction>,
    /// YYYY-MM-DD.
    #[uniffi(default = None)]
    pub follow_up_due: Option<String>,
    pub status: VisitStatus,
    #[uniffi(default = "")]
    pub review_comment: String,
    #[uniffi(default = None)]
    pub reviewed_by: Option<String>,
    /// Ids of the child cases opened during this visit.
    #[uniffi(default = [])]
    pub children_identified: Vec<String>,
    /// The reference versions the visit was captured with (set by the store; read-only).
    #[uniffi(default)]
    pub captured_with: ReferenceVersions,
}

fn bands_out(b: core::AgeBands) -> AgeBands {
    AgeBands {
        under_12: signed(b.under_12),
        age_12_14: signed(b.age_12_14),
        age_15_17: signed(b.age_15_17),
        adults: signed(b.adults),
    }
}

fn bands_in(sex: &str, b: AgeBands) -> Result<core::AgeBands> {
    let field = |band: &str| format!("workforce.{sex}.{band}");
    Ok(core::AgeBands {
        under_12: count(&field("under_12"), b.under_12)?,
        age_12_14: count(&field("age_12_14"), b.age_12_14)?,
        age_15_17: count(&field("age_15_17"), b.age_15_17)?,
        adults: count(&field("adults"), b.adults)?,
    })
}

impl From<core::Visit> for Visit {
    fn from(v: core::Visit) -> Self {
        Visit {
            id: v.id.to_string(),
            version: v.version.to_string(),
            kind: v.kind,
            workplace_id: v.workplace_id.to_string(),
            visitor_id: v.visitor_id.to_string(),
            area: v.area,
            started_at: format_instant(v.started_at),
            ended_at: v.ended_at.map(format_instant),
            gps: v.gps,
            workforce: Workforce {
                female: bands_out(v.workforce.female),
                male: bands_out(v.workforce.male),
            },
            checklist: ChecklistAnswers {
                checklist: v.checklist.checklist,
                version: signed(v.checklist.version),
                answers: v.checklist.answers.into_iter().collect(),
            },
            forced_labour: v.forced_labour.into_iter().collect(),
            findings: v.findings,
            actions: v.actions.into_iter().collect(),
            follow_up_due: v.follow_up_due.map(format_date),
            status: v.status,
            review_comment: v.review_comment,
            reviewed_by: v.reviewed_by.map(|u| u.to_string()),
            children_identified: v
                .children_identified
                .into_iter()
                .map(|u| u.to_string())
                .collect(),
            captured_with: v.captured_with.into(),
        }
    }
}

impl Visit {
    pub(crate) fn into_core(self) -> Result<core::Visit> {
        Ok(core::Visit {
            id: parse_record_id(&self.id)?,
            version: parse_version(&self.version)?,
            kind: self.kind,
            workplace_id: parse_id("workplace_id", &self.workplace_id)?,
            visitor_id: parse_id("visitor_id", &self.visitor_id)?,
            area: self.area,
            started_at: parse_instant("started_at", &self.started_at)?,
            ended_at: parse_opt_instant("ended_at", &self.ended_at)?,
            gps: self.gps,
            workforce: core::Workforce {
                female: bands_in("female", self.workforce.female)?,
                male: bands_in("male", self.workforce.male)?,
            },
            checklist: core::ChecklistAnswers {
                checklist: self.checklist.checklist,
                version: count("checklist.version", self.checklist.version)?,
                answers: self.checklist.answers.into_iter().collect(),
            },
            forced_labour: self.forced_labour.into_iter().collect(),
            findings: self.findings,
            actions: self.actions.into_iter().collect(),
            follow_up_due: parse_opt_date("follow_up_due", &self.follow_up_due)?,
            status: self.status,
            review_comment: self.review_comment,
            reviewed_by: parse_opt_id("reviewed_by", &self.reviewed_by)?,
            children_identified: parse_ids(
                "children_identified",
                &self.children_identified,
                |u| u,
            )?,
            // The store sets it on creation and keeps the stored one on update.
            captured_with: Default::default(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Child case

/// The rule set's reading of a case, computed by the store on every write (read-only: a value
/// passed in is ignored).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Classification {
    pub outcome: ClassificationOutcome,
    /// `id@version` of the rule set that decided.
    pub rule_set: String,
    /// The age the rules were applied to, when it could be established.
    pub age: Option<i32>,
    /// Which rule decided, for the reviewer.
    pub reason: String,
}

/// A referral of a child to a service.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Referral {
    /// Empty for a new referral: `add_referral` gives it one.
    #[uniffi(default = "")]
    pub id: String,
    pub service: ServiceKind,
    pub provider: String,
    /// YYYY-MM-DD.
    pub date: String,
    #[uniffi(default = "")]
    pub outcome: String,
}

/// A follow-up of a child's situation.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FollowUp {
    /// Empty for a new follow-up: `add_follow_up` gives it one.
    #[uniffi(default = "")]
    pub id: String,
    /// YYYY-MM-DD.
    pub date: String,
    pub situation: FollowUpSituation,
    #[uniffi(default = "")]
    pub notes: String,
    /// When the next follow-up is due (YYYY-MM-DD); it appears in `follow_ups_due`.
    #[uniffi(default = None)]
    pub next_due: Option<String>,
}

/// A child found working or at risk, and what was done for them.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ChildCase {
    #[uniffi(default = "")]
    pub id: String,
    #[uniffi(default = "")]
    pub version: String,
    /// Pseudonymous code, the only identifier that appears in reports.
    pub case_code: String,
    /// The child's name: sensitive.
    pub name: String,
    pub sex: Sex,
    #[uniffi(default = None)]
    pub date_of_birth: Option<String>,
    #[uniffi(default = None)]
    pub estimated_age: Option<i32>,
    pub age_basis: AgeBasis,
    #[uniffi(default = "")]
    pub guardian: String,
    #[uniffi(default = "")]
    pub household: String,
    pub area: Area,
    #[uniffi(default = None)]
    pub workplace_id: Option<String>,
    #[uniffi(default = None)]
    pub identified_on_visit: Option<String>,
    /// YYYY-MM-DD.
    pub identified_on: String,
    pub identified_by: String,
    pub school: SchoolStatus,
    #[uniffi(default = "")]
    pub activity: String,
    #[uniffi(default = [])]
    pub tasks: Vec<String>,
    #[uniffi(default = 0)]
    pub hours_per_week: i32,
    #[uniffi(default = false)]
    pub night_work: bool,
    /// Codes from `reference_hazards()`.
    #[uniffi(default = [])]
    pub hazards: Vec<String>,
    #[uniffi(default = [])]
    pub worst_forms: Vec<WorstForm>,
    #[uniffi(default = None)]
    pub classification: Option<Classification>,
    pub status: CaseStatus,
    #[uniffi(default = [])]
    pub referrals: Vec<Referral>,
    #[uniffi(default = [])]
    pub followups: Vec<FollowUp>,
    #[uniffi(default = "")]
    pub notes: String,
    /// The day the child was verified withdrawn or prevented (YYYY-MM-DD): the start of the
    /// follow-up schedule.
    #[uniffi(default = None)]
    pub remediated_on: Option<String>,
    /// The next follow-up the rule set's schedule plans (YYYY-MM-DD; computed by the store on
    /// every write, read-only).
    #[uniffi(default = None)]
    pub follow_up_due: Option<String>,
    /// On a duplicate registration: the case it was merged into.
    #[uniffi(default = None)]
    pub merged_into: Option<String>,
    /// The duplicates merged into this case.
    #[uniffi(default = [])]
    pub merged_from: Vec<String>,
    /// The reference versions the case was captured with (its country profile decides its
    /// classification; set by the store, read-only).
    #[uniffi(default)]
    pub captured_with: ReferenceVersions,
}

impl From<core::Classification> for Classification {
    fn from(c: core::Classification) -> Self {
        Classification {
            outcome: c.outcome,
            rule_set: c.rule_set,
            age: c.age.map(signed),
            reason: c.reason,
        }
    }
}

/// Referrals and follow-ups are keyed by id: a duplicate id would silently drop one.
fn keyed<T>(field: &str, items: Vec<(String, T)>) -> Result<BTreeMap<Uuid, T>> {
    let mut map = BTreeMap::new();
    for (id, item) in items {
        let id = if id.trim().is_empty() {
            Uuid::now_v7()
        } else {
            parse_id(&format!("{field}.id"), &id)?
        };
        if map.insert(id, item).is_some() {
            return Err(VigieError::validation(
                format!("{field}.{id}"),
                "the same id appears twice",
            ));
        }
    }
    Ok(map)
}

impl Referral {
    pub(crate) fn into_core(self, index: usize) -> Result<(String, core::Referral)> {
        let field = format!("referrals.{}.date", self.id_or(index));
        Ok((
            self.id,
            core::Referral {
                service: self.service,
                provider: self.provider,
                date: parse_date(&field, &self.date)?,
                outcome: self.outcome,
            },
        ))
    }

    fn id_or(&self, index: usize) -> String {
        if self.id.is_empty() {
            format!("[{index}]")
        } else {
            self.id.clone()
        }
    }
}

impl FollowUp {
    pub(crate) fn into_core(self, index: usize) -> Result<(String, core::FollowUp)> {
        let id = if self.id.is_empty() {
            format!("[{index}]")
        } else {
            self.id.clone()
        };
        Ok((
            self.id,
            core::FollowUp {
                date: parse_date(&format!("followups.{id}.date"), &self.date)?,
                situation: self.situation,
                notes: self.notes,
                next_due: parse_opt_date(&format!("followups.{id}.next_due"), &self.next_due)?,
            },
        ))
    }
}

impl From<core::ChildCase> for ChildCase {
    fn from(c: core::ChildCase) -> Self {
        ChildCase {
            id: c.id.to_string(),
            version: c.version.to_string(),
            case_code: c.case_code,
            name: c.name,
            sex: c.sex,
            date_of_birth: c.date_of_birth.map(format_date),
            estimated_age: c.estimated_age.map(signed),
            age_basis: c.age_basis,
            guardian: c.guardian,
            household: c.household,
            area: c.area,
            workplace_id: c.workplace_id.map(|u| u.to_string()),
            identified_on_visit: c.identified_on_visit.map(|u| u.to_string()),
            identified_on: format_date(c.identified_on),
            identified_by: c.identified_by.to_string(),
            school: c.school,
            activity: c.activity,
            tasks: sorted_strings(c.tasks),
            hours_per_week: signed(c.hours_per_week),
            night_work: c.night_work,
            hazards: sorted_strings(c.hazards),
            worst_forms: c.worst_forms.into_iter().collect(),
            classification: c.classification.map(Into::into),
            status: c.status,
            referrals: c
                .referrals
                .into_iter()
                .map(|(id, r)| Referral {
                    id: id.to_string(),
                    service: r.service,
                    provider: r.provider,
                    date: format_date(r.date),
                    outcome: r.outcome,
                })
                .collect(),
            followups: c
                .followups
                .into_iter()
                .map(|(id, f)| FollowUp {
                    id: id.to_string(),
                    date: format_date(f.date),
                    situation: f.situation,
                    notes: f.notes,
                    next_due: f.next_due.map(format_date),
                })
                .collect(),
            notes: c.notes,
            remediated_on: c.remediated_on.map(format_date),
            follow_up_due: c.follow_up_due.map(format_date),
            merged_into: c.merged_into.map(|u| u.to_string()),
            merged_from: c.merged_from.into_iter().map(|u| u.to_string()).collect(),
            captured_with: c.captured_with.into(),
        }
    }
}

impl ChildCase {
    pub(crate) fn into_core(self) -> Result<core::ChildCase> {
        let referrals = self
            .referrals
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.into_core(i))
            .collect::<Result<Vec<_>>>()?;
        let followups = self
            .followups
            .into_iter()
            .enumerate()
            .map(|(i, f)| f.into_core(i))
            .collect::<Result<Vec<_>>>()?;
        Ok(core::ChildCase {
            id: parse_record_id(&self.id)?,
            version: parse_version(&self.version)?,
            case_code: self.case_code,
            name: self.name,
            sex: self.sex,
            date_of_birth: parse_opt_date("date_of_birth", &self.date_of_birth)?,
            estimated_age: self
                .estimated_age
                .map(|a| count("estimated_age", a))
                .transpose()?,
            age_basis: self.age_basis,
            guardian: self.guardian,
            household: self.household,
            area: self.area,
            workplace_id: parse_opt_id("workplace_id", &self.workplace_id)?,
            identified_on_visit: parse_opt_id("identified_on_visit", &self.identified_on_visit)?,
            identified_on: parse_date("identified_on", &self.identified_on)?,
            identified_by: parse_id("identified_by", &self.identified_by)?,
            school: self.school,
            activity: self.activity,
            tasks: self.tasks.into_iter().collect(),
            hours_per_week: count("hours_per_week", self.hours_per_week)?,
            night_work: self.night_work,
            hazards: self.hazards.into_iter().collect(),
            worst_forms: self.worst_forms.into_iter().collect(),
            // Derived by the store on every write.
            classification: None,
            status: self.status,
            referrals: keyed("referrals", referrals)?,
            followups: keyed("followups", followups)?,
            notes: self.notes,
            remediated_on: parse_opt_date("remediated_on", &self.remediated_on)?,
            // Derived by the store on every write.
            follow_up_due: None,
            merged_into: parse_opt_id("merged_into", &self.merged_into)?,
            merged_from: parse_ids("merged_from", &self.merged_from, |u| u)?,
            // The store sets it on creation and keeps the stored one on update.
            captured_with: Default::default(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// User

/// A person who uses Vigie, with the areas assigned to them.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct User {
    #[uniffi(default = "")]
    pub id: String,
    #[uniffi(default = "")]
    pub version: String,
    pub name: String,
    pub role: Role,
    /// Area codes (communities for a monitor, a district for an inspector, a region for a
    /// supervisor).
    pub areas: Vec<String>,
    #[uniffi(default = true)]
    pub active: bool,
}

impl From<core::User> for User {
    fn from(u: core::User) -> Self {
        User {
            id: u.id.to_string(),
            version: u.version.to_string(),
            name: u.name,
            role: u.role,
            areas: sorted_strings(u.areas),
            active: u.active,
        }
    }
}

impl User {
    pub(crate) fn into_core(self) -> Result<core::User> {
        Ok(core::User {
            id: parse_record_id(&self.id)?,
            version: parse_version(&self.version)?,
            name: self.name,
            role: self.role,
            areas: self.areas.into_iter().collect(),
            active: self.active,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Queries and their results

/// Records whose area has this code at this level.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum AreaFilter {
    Country { code: String },
    Region { code: String },
    District { code: String },
    Community { code: String },
}

impl From<AreaFilter> for core::AreaFilter {
    fn from(a: AreaFilter) -> Self {
        match a {
            AreaFilter::Country { code } => core::AreaFilter::Country(code),
            AreaFilter::Region { code } => core::AreaFilter::Region(code),
            AreaFilter::District { code } => core::AreaFilter::District(code),
            AreaFilter::Community { code } => core::AreaFilter::Community(code),
        }
    }
}

/// `limit` rows after skipping `offset` (at most 500 a page).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct Page {
    #[uniffi(default = 0)]
    pub offset: i32,
    #[uniffi(default = 50)]
    pub limit: i32,
}

impl Page {
    pub(crate) fn into_core(self) -> Result<core::Page> {
        Ok(core::Page {
            offset: count("page.offset", self.offset)?,
            limit: count("page.limit", self.limit)?,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct VisitQuery {
    #[uniffi(default = None)]
    pub area: Option<AreaFilter>,
    #[uniffi(default = None)]
    pub status: Option<VisitStatus>,
    #[uniffi(default = None)]
    pub workplace_id: Option<String>,
    #[uniffi(default = None)]
    pub visitor_id: Option<String>,
    /// RFC 3339: visits started at or after this instant.
    #[uniffi(default = None)]
    pub started_from: Option<String>,
    /// RFC 3339: visits started before this instant.
    #[uniffi(default = None)]
    pub started_before: Option<String>,
}

impl VisitQuery {
    pub(crate) fn into_core(self) -> Result<core::VisitQuery> {
        Ok(core::VisitQuery {
            area: self.area.map(Into::into),
            status: self.status,
            workplace_id: parse_opt_id("workplace_id", &self.workplace_id)?,
            visitor_id: parse_opt_id("visitor_id", &self.visitor_id)?,
            started_from: parse_opt_utc("started_from", &self.started_from)?,
            started_before: parse_opt_utc("started_before", &self.started_before)?,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct ChildCaseQuery {
    #[uniffi(default = None)]
    pub area: Option<AreaFilter>,
    #[uniffi(default = None)]
    pub status: Option<CaseStatus>,
    #[uniffi(default = None)]
    pub classification: Option<ClassificationOutcome>,
}

impl From<ChildCaseQuery> for core::ChildCaseQuery {
    fn from(q: ChildCaseQuery) -> Self {
        core::ChildCaseQuery {
            area: q.area.map(Into::into),
            status: q.status,
            classification: q.classification,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct WorkplaceQuery {
    #[uniffi(default = None)]
    pub area: Option<AreaFilter>,
    #[uniffi(default = None)]
    pub sector: Option<String>,
}

impl From<WorkplaceQuery> for core::WorkplaceQuery {
    fn from(q: WorkplaceQuery) -> Self {
        core::WorkplaceQuery {
            area: q.area.map(Into::into),
            sector: q.sector,
        }
    }
}

/// A visit as a list shows it, read from the index without loading the record.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct VisitSummary {
    pub id: String,
    pub kind: VisitKind,
    pub workplace_id: String,
    pub visitor_id: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub status: VisitStatus,
    pub district: String,
    pub community: String,
}

impl From<core::VisitSummary> for VisitSummary {
    fn from(v: core::VisitSummary) -> Self {
        VisitSummary {
            id: v.id.to_string(),
            kind: v.kind,
            workplace_id: v.workplace_id.to_string(),
            visitor_id: v.visitor_id.to_string(),
            started_at: format_utc(v.started_at),
            status: v.status,
            district: v.district,
            community: v.community,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ChildCaseSummary {
    pub id: String,
    pub case_code: String,
    pub name: String,
    pub sex: Sex,
    pub age: Option<i32>,
    pub status: CaseStatus,
    pub classification: Option<ClassificationOutcome>,
    pub district: String,
    pub community: String,
}

impl From<core::ChildCaseSummary> for ChildCaseSummary {
    fn from(c: core::ChildCaseSummary) -> Self {
        ChildCaseSummary {
            id: c.id.to_string(),
            case_code: c.case_code,
            name: c.name,
            sex: c.sex,
            age: c.age.map(signed),
            status: c.status,
            classification: c.classification,
            district: c.district,
            community: c.community,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct WorkplaceSummary {
    pub id: String,
    pub name: String,
    pub sector: String,
    pub district: String,
    pub community: String,
}

impl From<core::WorkplaceSummary> for WorkplaceSummary {
    fn from(w: core::WorkplaceSummary) -> Self {
        WorkplaceSummary {
            id: w.id.to_string(),
            name: w.name,
            sector: w.sector,
            district: w.district,
            community: w.community,
        }
    }
}

/// A record with a follow-up due.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct DueItem {
    pub id: String,
    pub kind: RecordKind,
    /// YYYY-MM-DD.
    pub due: String,
    pub assignee: String,
    pub district: String,
    pub community: String,
}

impl From<core::DueItem> for DueItem {
    fn from(d: core::DueItem) -> Self {
        DueItem {
            id: d.id.to_string(),
            kind: d.kind,
            due: format_date(d.due),
            assignee: d.assignee.to_string(),
            district: d.district,
            community: d.community,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SearchHit {
    pub id: String,
    pub kind: RecordKind,
    pub name: String,
}

impl From<core::SearchHit> for SearchHit {
    fn from(h: core::SearchHit) -> Self {
        SearchHit {
            id: h.id.to_string(),
            kind: h.kind,
            name: h.name,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// History and conflicts

/// Who made a change: a user, on a device.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ChangeAuthor {
    pub user_id: String,
    pub device_id: String,
}

impl From<core::ChangeAuthor> for ChangeAuthor {
    fn from(a: core::ChangeAuthor) -> Self {
        ChangeAuthor {
            user_id: a.user.to_string(),
            device_id: a.device.to_string(),
        }
    }
}

/// One change in a record's history.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HistoryEntry {
    /// The change's hash.
    pub change: String,
    pub author: Option<ChangeAuthor>,
    /// The device's clock when the change was made (RFC 3339, UTC).
    pub time: Option<String>,
    /// Dotted paths of the fields the change set.
    pub fields: Vec<String>,
}

impl From<core::HistoryEntry> for HistoryEntry {
    fn from(h: core::HistoryEntry) -> Self {
        HistoryEntry {
            change: h.change,
            author: h.author.map(Into::into),
            time: h.time.map(format_utc),
            fields: h.fields,
        }
    }
}

/// One of the values devices set concurrently for a field.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ConflictValue {
    /// The value as JSON (`"\"returned\""`, `"12"`, `"{...}"`).
    pub value_json: String,
    pub author: Option<ChangeAuthor>,
    pub time: Option<String>,
    pub change: String,
}

/// A field holding concurrent distinct values, until `resolve_conflict` settles it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FieldConflict {
    /// The field's path from the record's root, one key per element: pass it to
    /// `resolve_conflict`.
    pub path: Vec<String>,
    /// The path as a dotted string, for display.
    pub field: String,
    pub values: Vec<ConflictValue>,
}

impl From<core::Conflict> for FieldConflict {
    fn from(c: core::Conflict) -> Self {
        FieldConflict {
            field: c.field(),
            path: c.path,
            values: c
                .values
                .into_iter()
                .map(|v| ConflictValue {
                    value_json: v.value.to_string(),
                    author: v.author.map(Into::into),
                    time: v.time.map(format_utc),
                    change: v.change,
                })
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sync

/// A record the hub refused, and why. The device keeps its copy and offers it again.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RefusedRecord {
    pub id: String,
    pub reason: Refusal,
}

/// A received record that could not be applied; it is fetched whole next time.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FailedRecord {
    pub id: String,
    pub reason: String,
}

fn refused(list: Vec<(Uuid, Refusal)>) -> Vec<RefusedRecord> {
    list.into_iter()
        .map(|(id, reason)| RefusedRecord {
            id: id.to_string(),
            reason,
        })
        .collect()
}

fn failed(list: Vec<(Uuid, String)>) -> Vec<FailedRecord> {
    list.into_iter()
        .map(|(id, reason)| FailedRecord {
            id: id.to_string(),
            reason,
        })
        .collect()
}

/// What applying one hub response did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncReport {
    /// Records the hub stored from this device.
    pub accepted: i64,
    pub refused: Vec<RefusedRecord>,
    /// Records received and merged.
    pub received: i64,
    pub failed: Vec<FailedRecord>,
    /// The hub has more to send: make another request.
    pub more: bool,
    /// The hub saw this device's clock far from its own.
    pub clock_skewed: bool,
    /// Records erased on the hub (their copies left the device for good).
    pub erased: i64,
    /// Records whose changes the hub kept for review (the user lost their area); they left the
    /// device.
    pub quarantined: i64,
    /// Records no longer in the user's scope that left the device.
    pub left_scope: i64,
}

impl From<core::sync::SyncReport> for SyncReport {
    fn from(r: core::sync::SyncReport) -> Self {
        SyncReport {
            accepted: long(r.accepted),
            refused: refused(r.refused),
            received: long(r.received),
            failed: failed(r.failed),
            more: r.more,
            clock_skewed: r.clock_skewed,
            erased: long(r.erased.len()),
            quarantined: long(r.quarantined.len()),
            left_scope: long(r.left_scope.len()),
        }
    }
}

/// The signed-in user's role and area codes, as the hub told the device at its last sync: the
/// role the store's workflow calls act with.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct UserProfile {
    pub role: Role,
    pub areas: Vec<String>,
}

impl From<core::sync::UserProfile> for UserProfile {
    fn from(p: core::sync::UserProfile) -> UserProfile {
        UserProfile {
            role: p.role,
            areas: p.areas,
        }
    }
}

/// What a whole sync session did, so far (progress) or in the end.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncSummary {
    pub round_trips: i64,
    pub bytes_sent: i64,
    pub bytes_received: i64,
    pub accepted: i64,
    pub received: i64,
    pub refused: Vec<RefusedRecord>,
    pub failed: Vec<FailedRecord>,
    pub clock_skewed: bool,
    /// Records still waiting to be sent (refused ones included).
    pub pending: i64,
    /// Records erased on the hub (their copies left the device for good).
    pub erased: i64,
    /// Records whose changes the hub kept for review (the user lost their area); they left the
    /// device.
    pub quarantined: i64,
    /// Records no longer in the user's scope that left the device.
    pub left_scope: i64,
}

impl From<core::sync::SyncSummary> for SyncSummary {
    fn from(s: core::sync::SyncSummary) -> Self {
        SyncSummary {
            round_trips: long(s.round_trips),
            bytes_sent: long(s.bytes_sent),
            bytes_received: long(s.bytes_received),
            accepted: long(s.accepted),
            received: long(s.received),
            refused: refused(s.refused),
            failed: failed(s.failed),
            clock_skewed: s.clock_skewed,
            pending: long(s.pending),
            erased: long(s.erased.len()),
            quarantined: long(s.quarantined.len()),
            left_scope: long(s.left_scope.len()),
        }
    }
}

/// A bundle file's bytes, and the mark to pass as `since` next time to export only what
/// changed after this one.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct BundleExport {
    pub bytes: Vec<u8>,
    pub mark: i64,
}

/// What importing a bundle did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct BundleReport {
    pub records: i64,
    /// Records that brought something new.
    pub changed: i64,
    /// The device that exported the bundle.
    pub from_device: Option<String>,
}

impl From<core::sync::BundleReport> for BundleReport {
    fn from(r: core::sync::BundleReport) -> Self {
        BundleReport {
            records: long(r.records),
            changed: long(r.changed),
            from_device: r.from_device.map(|u| u.to_string()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reference data

/// A code with its labels (a sector, a hazard, a checklist item).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ReferenceItem {
    pub code: String,
    pub label_fr: String,
    pub label_en: String,
}

/// A versioned checklist and its items.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Checklist {
    pub id: String,
    pub version: i32,
    pub items: Vec<ReferenceItem>,
}

/// Sectors, hazards and checklist items are all coded items with labels by language.
impl From<&core::reference::Item> for ReferenceItem {
    fn from(item: &core::reference::Item) -> Self {
        ReferenceItem {
            code: item.code.clone(),
            label_fr: item.label("fr").to_string(),
            label_en: item.label("en").to_string(),
        }
    }
}

impl From<&core::reference::Checklist> for Checklist {
    fn from(c: &core::reference::Checklist) -> Self {
        Checklist {
            id: c.id.clone(),
            version: signed(c.version),
            items: c.items.iter().map(Into::into).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_instants_round_trip_and_name_their_field() {
        assert_eq!(
            format_date(parse_date("d", "2026-03-02").unwrap()),
            "2026-03-02"
        );
        let t = parse_instant("t", "2026-03-02T09:00:00+01:00").unwrap();
        assert_eq!(format_instant(t), "2026-03-02T09:00:00+01:00");
        assert!(matches!(
            parse_date("followups.x.date", "02/03/2026"),
            Err(VigieError::Validation { field, .. }) if field == "followups.x.date"
        ));
        assert!(matches!(
            parse_instant("started_at", "2026-03-02 09:00"),
            Err(VigieError::Validation { field, .. }) if field == "started_at"
        ));
    }

    #[test]
    fn a_child_case_round_trips_through_the_binding_record() {
        let user = Uuid::now_v7();
        let mut c = core::ChildCase::new(
            "CI-0001",
            "Aya",
            Sex::Female,
            Area::new("CI", "CI-R1", "CI-R1-D1", "CI-R1-D1-C01"),
            NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
            user,
        );
        c.estimated_age = Some(11);
        c.hazards.insert("heavy_loads".into());
        c.referrals.insert(
            Uuid::now_v7(),
            core::Referral {
                service: ServiceKind::Education,
                provider: "École".into(),
                date: NaiveDate::from_ymd_opt(2026, 3, 3).unwrap(),
                outcome: String::new(),
            },
        );
        c.merged_from.insert(Uuid::now_v7());
        c.remediated_on = NaiveDate::from_ymd_opt(2026, 4, 1);
        let back = ChildCase::from(c.clone()).into_core().unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn negative_counts_and_duplicate_ids_are_refused_by_field() {
        let bands = AgeBands {
            adults: -1,
            ..AgeBands::default()
        };
        assert!(matches!(
            bands_in("male", bands),
            Err(VigieError::Validation { field, .. }) if field == "workforce.male.adults"
        ));
        let id = Uuid::now_v7().to_string();
        assert!(matches!(
            keyed("referrals", vec![(id.clone(), 1), (id.clone(), 2)]),
            Err(VigieError::Validation { field, .. }) if field == format!("referrals.{id}")
        ));
    }
}

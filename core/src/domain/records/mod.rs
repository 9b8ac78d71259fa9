//! Typed field records. Each record is stored as one Automerge document (see `doc`); the
//! structs here are the shape the application reads and writes, and the bindings' own types.
//!
//! Collections inside a record are maps keyed by an id or a code, never lists: two devices that
//! add a referral or tick a hazard concurrently then both keep their addition, and two edits of
//! the same referral merge field by field.

mod child_case;
mod reference_document;
mod user;
mod visit;
mod workplace;

pub use child_case::{ChildCase, FollowUp, Referral, latest_follow_up};
pub(crate) use child_case::{MERGE_CHAIN, plans_within_childhood};
pub use reference_document::ReferenceDocument;
pub use user::{User, UserProblem};
pub use visit::{AgeBands, ChecklistAnswers, Visit, Workforce};
pub use workplace::{Location, Workplace};

use crate::domain::area::Area;
use crate::domain::codes::{AreaLevel, RecordKind, ReferenceType};
use crate::domain::reference::{ReferenceData, ReferencePins};
use crate::domain::validation::ValidationError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use uuid::Uuid;

/// The version of a record a caller read: the Automerge heads of its document. An update is
/// applied as an edit made at this version, so a field that changed meanwhile (through sync)
/// is not overwritten silently: if the caller changed it too, both values are kept as a conflict.
/// Apps hold it as opaque text (`Display`/`parse`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Version(pub(crate) Vec<automerge::ChangeHash>);

impl Version {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn heads(&self) -> &[automerge::ChangeHash] {
        &self.0
    }
    /// The version at these heads.
    pub fn at(heads: Vec<automerge::ChangeHash>) -> Version {
        Version(heads)
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

/// A record as the role matrix sees it (`rights`).
#[derive(Clone, Copy)]
pub enum Subject<'a> {
    Workplace(&'a Workplace),
    Visit(&'a Visit),
    ChildCase(&'a ChildCase),
    /// A user or reference data.
    Administered(RecordKind),
}

impl Subject<'_> {
    pub fn kind(&self) -> RecordKind {
        match self {
            Subject::Workplace(_) => RecordKind::Workplace,
            Subject::Visit(_) => RecordKind::Visit,
            Subject::ChildCase(_) => RecordKind::ChildCase,
            Subject::Administered(kind) => *kind,
        }
    }
}

/// A root field's values held side by side in a record's document (two devices set it at
/// once, and no one has chosen yet), as JSON: the field and its distinct values.
pub type Concurrent = (&'static str, Vec<serde_json::Value>);

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
    /// Dotted paths of maps that are one value (a GPS point): written whole when they change,
    /// never merged field by field.
    const WHOLE_VALUES: &'static [&'static str] = &[];
    /// The types of reference data whose version the record keeps (`captured_with`).
    const PINNED: &'static [ReferenceType] = &[];
    /// Groups of root fields one act writes together (a visit's review: its status, reviewer
    /// and comment): a conflict settled on one of them settles the others with the values the
    /// same act wrote, never one reviewer's decision with another's comment.
    const DECIDED_TOGETHER: &'static [&'static [&'static str]] = &[];

    fn id(&self) -> Uuid;
    fn set_id(&mut self, id: Uuid);
    fn version(&self) -> &Version;
    fn set_version(&mut self, version: Version);
    fn validate(&self, reference: &ReferenceData) -> Result<(), ValidationError>;
    /// Fills derived fields (such as a child case's classification) before a write.
    fn derive(&mut self, _reference: &ReferenceData) {}
    /// `derive`, for a record whose document has several heads: writes made side by side were
    /// merged and none came since, so the derived fields it holds may be a mix of theirs. A
    /// kind whose derivation this device may be unable to make (a case captured with a profile
    /// version it lacks) works them out from what it holds rather than show the mix.
    fn derive_merged(&mut self, reference: &ReferenceData) {
        self.derive(reference)
    }
    /// Root fields a derived field decides on, which two devices may set side by side: while
    /// one holds values in conflict, `derive_in_conflict` weighs every one of them.
    const DECIDING: &'static [&'static str] = &[];
    /// Fields of the entries of a root map (a case's follow-ups: their day, situation and next
    /// visit) that derived facts decide on: while an entry holds values side by side at one of
    /// them, `derive_in_conflict` is given the map under each reading (`NESTED_READINGS`).
    const NESTED_DECIDING: &'static [(&'static str, &'static [&'static str])] = &[];
    /// After `derive`, for a record whose `DECIDING` fields hold values side by side (each
    /// with its values, the record's own first): by default nothing more.
    fn derive_in_conflict(&mut self, _reference: &ReferenceData, _concurrent: &[Concurrent]) {}
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
    fn area_mut(&mut self) -> Option<&mut Area> {
        None
    }
    /// The record as the role matrix sees it (`rights`).
    fn subject(&self) -> Subject<'_> {
        Subject::Administered(Self::KIND)
    }
    /// The days on which things the record tells of happened (a visit, a follow-up, a
    /// referral), each with its field's path: none of them can be later than today. Not part
    /// of `validate`, which needs no clock: a phone's may be wrong, so the hub checks them
    /// against its own when they change (`sync::hub::check_content`).
    fn event_dates(&self) -> Vec<(String, chrono::NaiveDate)> {
        Vec::new()
    }
    /// The record's free text (notes, findings, comments), each with its field's path: judged
    /// when it is set (`texts_within_rules`), as event days are, not by `validate`: text a
    /// record held before a rule came (a visit submitted with a NUL in its findings) would
    /// otherwise block every later step of the record, its review included.
    fn free_texts(&self) -> Vec<(String, &str)> {
        Vec::new()
    }
    /// Moves the record to the reference data in force where its user's edit needs what only
    /// that holds (a case given a hazard the national list gained since the child was
    /// identified is classified with the list in force from then on). Asked of a user's edits
    /// before `derive`; the hub takes such a move forward, never back (`sync::hub::pins_kept`).
    fn follow_reference_in_force(&mut self, _reference: &ReferenceData) {}
    /// The other records this one names, each with its field and the kind it must be of (a
    /// visit's workplace). One that a store or the hub holds under another kind is refused
    /// (`check_references`); one not held may be on its way, or outside the scope.
    fn references(&self) -> Vec<Reference> {
        Vec::new()
    }
}

/// A record another names: the field naming it, its id, and the kind it must be of.
pub type Reference = (&'static str, Uuid, RecordKind);

/// Checks the records a record names (`after`) that it did not name before (`before`; a new
/// record: none) against the kinds held under their ids (`kind_of`: none when not held): a
/// reference to a record of another kind (a visit "at" a child case) is refused naming its
/// field.
pub fn check_references<E>(
    before: &[Reference],
    after: &[Reference],
    mut kind_of: impl FnMut(Uuid) -> Result<Option<RecordKind>, E>,
) -> Result<Result<(), ValidationError>, E> {
    for (field, id, kind) in after {
        if before.iter().any(|(f, i, _)| f == field && i == id) {
            continue;
        }
        if let Some(held) = kind_of(*id)?
            && held != *kind
        {
            return Ok(Err(ValidationError::new(*field, must_name(*kind))));
        }
    }
    Ok(Ok(()))
}

/// The rule a reference to a record of another kind than `kind` breaks (one text each, which
/// the catalogues translate whole).
fn must_name(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Workplace => "must name a workplace",
        RecordKind::Visit => "must name a visit",
        RecordKind::ChildCase => "must name a child case",
        RecordKind::User => "must name a user",
        RecordKind::Reference => "must name reference data",
    }
}

/// A visit is filed under the area of the workplace it visits (`Visit::new` copies it): one
/// filed elsewhere would reach the monitors of another community, who hold no such workplace,
/// and be counted there. `same_area`: whether the visit's area is the workplace's, where the
/// store holds the workplace (else true). Judged when the visit's area or workplace is set
/// (`was`: the visit before the write): one filed before its workplace moved keeps its area.
pub fn check_visit_filing(
    was: Option<&Visit>,
    visit: &Visit,
    same_area: bool,
) -> Result<(), ValidationError> {
    let set = was.is_none_or(|w| w.area != visit.area || w.workplace_id != visit.workplace_id);
    if set && !same_area {
        return Err(ValidationError::new(
            "area",
            "must be the area of the workplace visited",
        ));
    }
    Ok(())
}

/// An optional reference typed as no id at all (the nil id, an empty text from an app): refused,
/// naming the field, rather than kept as a reference to nothing.
pub(crate) fn optional_reference(field: &str, id: Option<Uuid>) -> Result<(), ValidationError> {
    match id {
        Some(id) if id.is_nil() => Err(ValidationError::new(
            field,
            "must name a record, or be left empty",
        )),
        _ => Ok(()),
    }
}

/// The earliest day a record may tell of (an event, a birth). A date before it is a slip of the
/// keyboard (year 0025 for 2025, 0000-01-01 from an empty picker) that would put a child in
/// indicators of another century.
pub const EARLIEST_DAY: chrono::NaiveDate = match chrono::NaiveDate::from_ymd_opt(1900, 1, 1) {
    Some(day) => day,
    None => panic!("a valid date"),
};

/// The latest day a record may name at all (a follow-up planned, a date typed with five
/// digits): the hub, which knows the day, refuses events after its today.
pub const LATEST_DAY: chrono::NaiveDate = match chrono::NaiveDate::from_ymd_opt(2199, 12, 31) {
    Some(day) => day,
    None => panic!("a valid date"),
};

/// The rule a day outside `EARLIEST_DAY` and `LATEST_DAY` breaks, the days written out (the
/// catalogues translate the words as the core writes them).
const WITHIN_CALENDAR: &str = "must be between 1900-01-01 and 2199-12-31";

/// Checks that each of `dates` (each with its field's path) is within `EARLIEST_DAY` and
/// `LATEST_DAY`.
pub(crate) fn within_calendar(
    dates: &[(String, chrono::NaiveDate)],
) -> Result<(), ValidationError> {
    match dates
        .iter()
        .find(|(_, day)| *day < EARLIEST_DAY || *day > LATEST_DAY)
    {
        Some((field, _)) => Err(ValidationError::new(field.clone(), WITHIN_CALENDAR)),
        None => Ok(()),
    }
}

/// The latest day an event a record tells of may fall on, by this machine's clock: today and a
/// day or two of time zones and a clock a little ahead (a follow-up "done" in 2099 is a slip).
pub fn latest_event_day() -> chrono::NaiveDate {
    Today::by_clock().latest_event_day()
}

/// The most fields `validate_beside` excuses in one record.
const MAX_EXCUSED: usize = 8;

/// `record`'s validation (`validate`), excusing each top-level field it leaves as `before`
/// held it and whose value breaks a rule newer than the value (a blank task an earlier version
/// took): that field is judged as if empty, and every other field as always, so that an edit
/// that leaves it holds back nothing else and lets nothing else through. A field that changed,
/// a number or a flag (nothing to judge it as instead), or one within a collection, is not
/// excused. The error is the first the record breaks otherwise.
pub fn validate_beside<R>(
    record: &R,
    before: Option<&R>,
    validate: impl Fn(&R) -> Result<(), ValidationError>,
) -> Result<(), ValidationError>
where
    R: Serialize + DeserializeOwned,
{
    let mut error = match validate(record) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    let (Some(before), Ok(mut judged)) = (before, serde_json::to_value(record)) else {
        return Err(error);
    };
    let Ok(held) = serde_json::to_value(before) else {
        return Err(error);
    };
    // Each field excused, with what it broke: said if emptying it breaks another rule of it.
    let mut excused: Vec<ValidationError> = Vec::new();
    for _ in 0..MAX_EXCUSED {
        if let Some(was) = excused.iter().find(|was| was.field == error.field) {
            return Err(was.clone());
        }
        // Reference versions this device lacks are no value of the record's to excuse.
        if judged_elsewhere(&error) {
            return Err(error);
        }
        let field = error.field.clone();
        let (Some(now), Some(was)) = (judged.get(&field), held.get(&field)) else {
            return Err(error);
        };
        let empty = match now {
            serde_json::Value::String(_) => serde_json::Value::String(String::new()),
            serde_json::Value::Array(_) => serde_json::Value::Array(Vec::new()),
            serde_json::Value::Object(_) => serde_json::Value::Object(Default::default()),
            _ => return Err(error),
        };
        if now != was || *now == empty {
            return Err(error);
        }
        judged[&field] = empty;
        let Ok(emptied) = serde_json::from_value::<R>(judged.clone()) else {
            return Err(error);
        };
        excused.push(error);
        match validate(&emptied) {
            Ok(()) => return Ok(()),
            Err(e) => error = e,
        }
    }
    Err(error)
}

/// What a machine knows of today when it judges the days a record tells of
/// (`events_within_their_time`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Today {
    /// The latest day an event may fall on.
    latest: chrono::NaiveDate,
    /// The days a clock gone back gives as today (a battery pulled: 2000, a firmware's date),
    /// refused on the writes of the device whose clock it is: an app took its "today" from it.
    wrong_clock: Option<WrongClock>,
    /// The zone of the device whose writes are judged, in minutes east of UTC: the day of a
    /// change's time there is the day its app took as today.
    zone_minutes: i32,
}

/// The days a device's wrong clock gave as today, and why its clock is known wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WrongClock {
    first: chrono::NaiveDate,
    last: chrono::NaiveDate,
    rule: &'static str,
}

/// Times before this are a clock that was never set (a battery pulled: 2000; a firmware's
/// date): no phone of Vigie's ran then.
pub(crate) const EARLIEST_PLAUSIBLE_MS: i64 = 1_577_836_800_000; // 2020-01-01

/// How far a device's clock may differ from its hub's before a sync says so, and the hub's
/// default allowance for a change's time (`HubLimits::clock_skew_ms`): far beyond a slow
/// link's delay.
pub const CLOCK_TOLERANCE_MS: i64 = 10 * 60 * 1000;

/// How far behind a time its hub told it a device's clock may read before its day is taken as
/// wrong: beyond any time zone (a clock's UTC instant does not depend on the zone) and any
/// drift between two syncs.
const CLOCK_BACK_MS: i64 = 24 * 60 * 60 * 1000;

/// The farthest a time zone lies from UTC, in minutes (UTC+14, UTC-12).
const FARTHEST_ZONE_MINUTES: i32 = 14 * 60;

impl Today {
    /// The clock's day, trusted, with a day or two of time zones and a clock a little ahead
    /// (the hub's for a device of an earlier version, the console's).
    pub fn by_clock() -> Today {
        Today {
            latest: chrono::Utc::now().date_naive() + chrono::Days::new(2),
            wrong_clock: None,
            zone_minutes: 0,
        }
    }

    /// A device's today — for its user's own writes (`own`) the day it is in its zone, as the
    /// hub judges them — its clock judged against `hub_clock_ms`, the hub's time in the last
    /// answer it applied: a clock that reads more than a day before it is wrong (a battery
    /// pulled: 2000; a firmware's date; or wrong already at that sync), for time runs on from
    /// what the hub said. `own` for its user's writes, not for a colleague's record a peer
    /// brings, which this clock did not date. A wrong clock says nothing of today but that it
    /// is after the hub's last word: a year past it still catches a date typed in 2099, and
    /// the hub checks the day against its own at the sync. (A hub whose clock ran ahead stops
    /// its phones recording today until it is set right and they sync again: its log names
    /// every device as off by as much.) Before any sync, a clock that reads a day before 2020
    /// is wrong all the same: a phone enrolled with its battery just replaced dated a child
    /// identified that day in 2000, out of every alert.
    pub fn on_device(hub_clock_ms: Option<i64>, own: bool) -> Today {
        Today::on_device_at(chrono::Local::now().fixed_offset(), hub_clock_ms, own)
    }

    /// `on_device`, its clock reading `now`.
    fn on_device_at(
        now: chrono::DateTime<chrono::FixedOffset>,
        hub_clock_ms: Option<i64>,
        own: bool,
    ) -> Today {
        let zone_minutes = now.offset().local_minus_utc() / 60;
        let gone_back = |rule| WrongClock {
            first: now.date_naive(),
            last: now.date_naive(),
            rule,
        };
        let vouched = hub_clock_ms
            .filter(|hub| now.timestamp_millis() < hub.saturating_sub(CLOCK_BACK_MS))
            .and_then(chrono::DateTime::from_timestamp_millis);
        match vouched {
            Some(vouched) => Today {
                latest: vouched
                    .date_naive()
                    .checked_add_days(chrono::Days::new(366))
                    .unwrap_or(LATEST_DAY),
                wrong_clock: own.then(|| gone_back(CLOCK_GONE_BACK)),
                zone_minutes,
            },
            // Its user's own writes: the day it is here, as the hub judges them from this
            // device's zone (`at_hub`): a follow-up dated tomorrow in a date picker, taken
            // here with the room `by_clock` leaves, was refused at the sync, its child's case
            // kept off the hub until the monitor found the date.
            // A clock never set says nothing of today: the real day typed by hand is taken,
            // and the hub judges it against its own at the sync.
            None if own && now.timestamp_millis() < EARLIEST_PLAUSIBLE_MS => Today {
                latest: LATEST_DAY,
                wrong_clock: Some(gone_back(CLOCK_NEVER_SET)),
                zone_minutes,
            },
            None if own => Today {
                latest: now.date_naive(),
                wrong_clock: None,
                zone_minutes,
            },
            None => Today {
                zone_minutes,
                ..Today::by_clock()
            },
        }
    }

    /// The hub's today for the records a device pushes, its zone `utc_offset_minutes` east of
    /// UTC: the day it is in that zone by the hub's clock, with no room for a clock ahead (a
    /// phone set a day ahead dated a girl's identification on her fifteenth birthday, the day
    /// before it). A device's clock behind the hub's is not judged here: the hub cannot tell
    /// it from its own clock running ahead (which would stop every phone's records of today),
    /// and a phone judges its clock gone back against its own history (`on_device`); but a
    /// change made before 2020 was dated by a clock never set (`with_changes_made_at`). A zone
    /// past any on Earth is not believed: the farthest one's day is the latest (a zone of
    /// +23:59 had two days' room).
    pub fn at_hub(utc_offset_minutes: i32) -> Today {
        let zone_minutes = utc_offset_minutes.clamp(-FARTHEST_ZONE_MINUTES, FARTHEST_ZONE_MINUTES);
        let zone = chrono::Duration::minutes(i64::from(zone_minutes));
        Today {
            latest: (chrono::Utc::now() + zone).date_naive(),
            wrong_clock: None,
            zone_minutes,
        }
    }

    /// This day, for changes made at `times_ms` (Automerge's times, by the clock of the device
    /// that made them) by the device whose writes are judged: the days a clock never set gave
    /// those made before 2020 are its wrong clock's (a phone that never synced, its clock back
    /// at 2000 after its battery ran out, dated a child identified today in 2000; the hub took
    /// it, and the case left every alert). Times before any event day are left out: they are
    /// no day an event may fall on anyway.
    pub fn with_changes_made_at(self, times_ms: impl IntoIterator<Item = i64>) -> Today {
        let earliest = EARLIEST_EVENT_DAY
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
            .timestamp_millis();
        let zone = chrono::Duration::minutes(i64::from(self.zone_minutes));
        let days = times_ms
            .into_iter()
            .filter(|ms| (earliest..EARLIEST_PLAUSIBLE_MS).contains(ms))
            .filter_map(chrono::DateTime::from_timestamp_millis)
            .map(|time| (time + zone).date_naive());
        let wrong = days.fold(self.wrong_clock, |wrong, day| {
            Some(match wrong {
                Some(wrong) => WrongClock {
                    first: wrong.first.min(day),
                    last: wrong.last.max(day),
                    ..wrong
                },
                None => WrongClock {
                    first: day,
                    last: day,
                    rule: CLOCK_NEVER_SET,
                },
            })
        });
        Today {
            wrong_clock: wrong,
            ..self
        }
    }

    /// Tests: this day as a clock `by` ahead gives it.
    #[cfg(feature = "test-hooks")]
    pub(crate) fn ahead_by(self, by: chrono::Days) -> Today {
        Today {
            latest: self.latest.checked_add_days(by).unwrap_or(LATEST_DAY),
            ..self
        }
    }

    /// The latest day an event may fall on.
    pub fn latest_event_day(&self) -> chrono::NaiveDate {
        self.latest
    }

    /// Whether `day` is one a clock gone back gives as today (a day of time zones each side).
    fn given_by_wrong_clock(&self, day: chrono::NaiveDate) -> bool {
        self.wrong_clock.is_some_and(|wrong| {
            (wrong.first - day).num_days() <= 1 && (day - wrong.last).num_days() <= 1
        })
    }

    /// Whether `day` breaks a rule of `events_within_their_time`.
    pub(crate) fn implausible(&self, day: chrono::NaiveDate) -> bool {
        day < EARLIEST_EVENT_DAY || day > self.latest || self.given_by_wrong_clock(day)
    }
}

/// The earliest day an event a record tells of (an identification, a visit, a referral, a
/// follow-up) may fall on: monitoring of this kind began after it, so an earlier day is a slip
/// of the year (1925 for 2025) that would put a child in another decade's indicators.
pub const EARLIEST_EVENT_DAY: chrono::NaiveDate = match chrono::NaiveDate::from_ymd_opt(1990, 1, 1)
{
    Some(day) => day,
    None => panic!("a valid date"),
};

/// The rule an event's day before `EARLIEST_EVENT_DAY` breaks, the day written out (the
/// console's catalogues translate the words as the core writes them).
const BEFORE_EARLIEST_EVENT_DAY: &str = "must not be before 1990-01-01 (check the year)";

/// The rule a day given by a clock gone back breaks (`Today::on_device`).
pub const CLOCK_GONE_BACK: &str = "is the day of the phone's clock, which is wrong (it reads a \
     day before the hub's time at the last sync): set the phone's date and time, then this day";

/// The rule a day given by a clock never set breaks (`Today::with_changes_made_at`, and a
/// phone's before its first sync).
pub const CLOCK_NEVER_SET: &str = "is the day of the phone's clock, which is wrong (it read a day \
     before 2020 when this was recorded): set the phone's date and time, then this day";

/// The rule a visit's checklist version breaks when this device does not hold it.
pub(crate) const UNKNOWN_CHECKLIST: &str = "unknown checklist or checklist version";

/// Whether `error` is one this device could not judge for lack of the reference data the
/// record was captured with (a version it has not received yet): the hub, which holds every
/// version, judges it. A record's `validate` checks what the reference data decides last, so
/// every other rule was judged before such an error.
pub(crate) fn judged_elsewhere(error: &ValidationError) -> bool {
    error
        .field
        .starts_with(crate::domain::reference::content::PINS_FIELD)
        || (error.field == "checklist.checklist" && error.rule == UNKNOWN_CHECKLIST)
}

/// Checks that every event day of `after` (`Record::event_dates`, with its field's path) that
/// `before` did not hold is between `EARLIEST_EVENT_DAY` and `today`'s latest event day, and,
/// on a device whose clock went back, not the day that clock gives: days set before stay,
/// checked when they came. The one rule of a device's own writes, of what it receives from
/// peers, and of the hub's pushes (where a device whose clock runs days ahead is caught).
pub(crate) fn events_within_their_time(
    today: &Today,
    before: &[(String, chrono::NaiveDate)],
    after: &[(String, chrono::NaiveDate)],
) -> Result<(), ValidationError> {
    match after
        .iter()
        .find(|dated| today.implausible(dated.1) && !before.contains(dated))
    {
        Some((field, day)) if *day < EARLIEST_EVENT_DAY => Err(ValidationError::new(
            field.clone(),
            BEFORE_EARLIEST_EVENT_DAY,
        )),
        Some((field, day)) if *day <= today.latest_event_day() => Err(ValidationError::new(
            field.clone(),
            today
                .wrong_clock
                .map_or(CLOCK_GONE_BACK, |wrong| wrong.rule),
        )),
        Some((field, _)) => Err(ValidationError::new(
            field.clone(),
            "must not be after today (check the date, and the phone's clock)",
        )),
        None => Ok(()),
    }
}

/// Checks the free text of `after` (`Record::free_texts`) that `before` did not hold, as
/// `validation::free_text` says: text set before stays, judged when it came.
pub(crate) fn texts_within_rules(
    before: &[(String, &str)],
    after: &[(String, &str)],
) -> Result<(), ValidationError> {
    for (field, text) in after {
        if !before.iter().any(|(f, t)| f == field && t == text) {
            crate::domain::validation::free_text(field, text)?;
        }
    }
    Ok(())
}

/// `texts_within_rules` for a write from `before` (its subject and free text, none for a new
/// record) to `after` (its free text `texts`): the text the write sets, a merge's aside
/// (`free_texts_set`). The one check of a device's own edits, of the hub's pushes and of what
/// peers bring.
pub(crate) fn set_texts_within_rules(
    before: Option<(Subject<'_>, &[(String, &str)])>,
    after: Subject<'_>,
    texts: Vec<(String, &str)>,
) -> Result<(), ValidationError> {
    let (subject, written) = before.unzip();
    let set = free_texts_set(subject, after, texts);
    texts_within_rules(written.unwrap_or_default(), &set)
}

/// The free text a write from `before` to `after` sets, for `texts_within_rules`: a merge (the
/// duplicates a case stands for grow) brings the duplicate's follow-ups and referrals under
/// their own keys with their text, judged where it was written: a text held there from before
/// the rule would otherwise refuse the merge, naming a field of the case kept that no one
/// typed.
fn free_texts_set<'a>(
    before: Option<Subject<'_>>,
    after: Subject<'a>,
    texts: Vec<(String, &'a str)>,
) -> Vec<(String, &'a str)> {
    let merging = match (before, after) {
        (Some(Subject::ChildCase(was)), Subject::ChildCase(now)) => {
            !now.merged_from.is_subset(&was.merged_from)
        }
        _ => false,
    };
    match merging {
        false => texts,
        true => texts
            .into_iter()
            .filter(|(field, _)| {
                !field.starts_with("followups.") && !field.starts_with("referrals.")
            })
            .collect(),
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
        fn area_mut(&mut self) -> Option<&mut Area> {
            Some(&mut self.$($area).+)
        }
    };
}
pub(crate) use record_pins;

/// The `Record` methods of a kind's id and version.
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
pub(crate) use record_identity;

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

impl ReferenceData {
    /// Sets the pins a new record is missing to the versions it is captured with now.
    pub(crate) fn pin_new<R: Record>(&self, record: &mut R) {
        let country = record.country().map(str::to_owned);
        if let Some(pins) = record.pins_mut() {
            for ty in R::PINNED {
                if let Some(slot) = pins.slot(*ty)
                    && slot.is_none()
                {
                    *slot = self.active_pin(*ty, country.as_deref());
                }
            }
        }
    }
}

/// An area code chosen among values in conflict (`area.community`, `area.district`) takes the
/// areas above it from the area tree: two supervisors who moved a case, one to a community of
/// its district and one to another district, left the district of one beside the community
/// of the other, and the colleague's community could not be chosen (refused as outside its
/// district).
pub(crate) fn above_the_area_chosen<R: Record>(
    record: &mut R,
    path: &[String],
    reference: &ReferenceData,
) {
    let [field, level] = path else { return };
    let Some(level) = AreaLevel::ALL.into_iter().find(|l| l.as_str() == level) else {
        return;
    };
    if field != "area" || level == AreaLevel::Country {
        return;
    }
    let pin = record.pins().and_then(|p| p.administrative_areas.clone());
    let Some(area) = record.area_mut() else {
        return;
    };
    let country = area.country.clone();
    // The tree the record was captured with, else (a code added since) the one in force.
    for tree in [
        reference.area_tree_for(pin.as_ref(), &country),
        reference.area_tree(&country),
    ]
    .into_iter()
    .flatten()
    {
        if tree.fill_above(area, level) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earliest_event_day_s_rule_names_that_day() {
        assert!(super::BEFORE_EARLIEST_EVENT_DAY.contains(&super::EARLIEST_EVENT_DAY.to_string()));
    }

    #[test]
    fn the_calendar_s_rule_names_its_days() {
        assert_eq!(
            WITHIN_CALENDAR,
            format!("must be between {EARLIEST_DAY} and {LATEST_DAY}")
        );
    }

    #[test]
    fn a_phone_that_never_synced_refuses_the_day_a_clock_before_2020_gives() {
        use chrono::TimeZone;
        let abidjan = chrono::FixedOffset::east_opt(0).unwrap();
        let at = |y, m, d| abidjan.with_ymd_and_hms(y, m, d, 9, 0, 0).unwrap();
        let day = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let dated = |today: &Today, on| {
            events_within_their_time(today, &[], &[("identified_on".into(), on)])
        };
        // Its battery replaced before its first sync: back at 2000.
        let never_set = Today::on_device_at(at(2000, 1, 1), None, true);
        assert_eq!(
            dated(&never_set, day(2000, 1, 1)).unwrap_err().rule,
            CLOCK_NEVER_SET
        );
        // A day typed by hand, away from the clock's, is its user's to give: the real one too.
        assert!(dated(&never_set, day(1999, 11, 20)).is_ok());
        assert!(dated(&never_set, chrono::Utc::now().date_naive()).is_ok());
        // A clock in the years phones ran is believed until a sync says otherwise.
        let right = Today::on_device_at(at(2026, 12, 7), None, true);
        assert!(dated(&right, day(2026, 12, 7)).is_ok());
        // What a colleague's phone brings is judged by its changes' times instead.
        assert!(
            dated(
                &Today::on_device_at(at(2000, 1, 1), None, false),
                day(2000, 1, 1)
            )
            .is_ok()
        );
    }

    #[test]
    fn the_days_of_changes_made_before_2020_are_a_clock_never_set() {
        let day = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let ms = |y, m, d, h| {
            day(y, m, d)
                .and_hms_opt(h, 0, 0)
                .unwrap()
                .and_utc()
                .timestamp_millis()
        };
        let dated = |today: &Today, on| {
            events_within_their_time(today, &[], &[("visit.started_at".into(), on)])
        };
        // Made at 23:00 UTC in a zone of UTC+2: the clock's day there was the 2nd.
        let east = Today::at_hub(120).with_changes_made_at([ms(2000, 1, 1, 23), ms(2000, 1, 3, 8)]);
        for wrong in [
            day(2000, 1, 1),
            day(2000, 1, 2),
            day(2000, 1, 3),
            day(2000, 1, 4),
        ] {
            assert_eq!(dated(&east, wrong).unwrap_err().rule, CLOCK_NEVER_SET);
        }
        assert!(dated(&east, day(2000, 1, 6)).is_ok());
        // Changes of a clock in the years phones ran, or before any event day, name no day.
        let right = Today::at_hub(0).with_changes_made_at([ms(2026, 3, 1, 9), 0]);
        assert!(dated(&right, day(2026, 3, 1)).is_ok());
        assert!(dated(&right, day(1970, 1, 1)).is_err_and(|e| e.rule != CLOCK_NEVER_SET));
    }
}

//! A child found working or at risk, and what was done for them: referrals, follow-ups, the
//! verification that ends the services, and the classification the rule set gives the case.

use super::{Concurrent, Record, Version, record_identity, record_pins, set_as_map};
use crate::domain::area::Area;
use crate::domain::classify::{Classification, RuleSet, Situation};
use crate::domain::codes::{
    AgeBasis, CaseStatus, FollowUpSituation, RecordKind, ReferenceType, SchoolStatus, ServiceKind,
    Sex, WorstForm,
};
use crate::domain::reference::{ReferenceData, ReferencePins};
use crate::domain::validation::{
    MAX_CODE_CHARS, MAX_FOLLOWUPS, MAX_LINE_CHARS, MAX_MERGED_CASES, MAX_REFERRALS, MAX_TASKS,
    ValidationError, at_most_entries, is_one_line, looks_empty, optional_line, require_line,
    valid_code,
};
use chrono::{Datelike, Months, NaiveDate};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// A referral of a child to a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Referral {
    pub service: ServiceKind,
    /// The provider: a provider code of the referral directory when it lists providers.
    pub provider: String,
    pub date: NaiveDate,
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default = ""))]
    pub outcome: String,
}

impl Referral {
    pub fn new(service: ServiceKind, provider: &str, date: NaiveDate) -> Referral {
        Referral {
            service,
            provider: provider.into(),
            date,
            outcome: String::new(),
        }
    }
}

/// A follow-up of a child's situation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct FollowUp {
    pub date: NaiveDate,
    pub situation: FollowUpSituation,
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default = ""))]
    pub notes: String,
    /// When the next follow-up is due; it appears in the due lists.
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub next_due: Option<NaiveDate>,
}

/// A field of a referral or follow-up a merge copied to the case kept (`was`, as the merge
/// took it from the duplicate): the duplicate's value (`from`) where it changed since and the
/// kept case's copy did not; otherwise the kept case's stands.
fn carry_field<T: PartialEq + Clone>(here: &mut T, from: &T, was: &T) {
    if from != was && here == was {
        *here = from.clone();
    }
}

/// The latest of a case's follow-ups: the one of the latest date; of several on one day (two
/// monitors, the same day), the most worrying observation (`FollowUpSituation::concern`), then
/// the one planning the next visit soonest, so that a child found still working is never
/// hidden by a reassuring follow-up of the same day; of equal ones, the last in the case's
/// (id) order, the same on every device. The one rule for alerts, due dates and closing.
pub fn latest_follow_up<'a>(followups: impl Iterator<Item = &'a FollowUp>) -> Option<&'a FollowUp> {
    followups.max_by_key(|f| {
        (
            f.date,
            f.situation.concern(),
            std::cmp::Reverse(f.next_due.unwrap_or(NaiveDate::MAX)),
        )
    })
}

/// The next visit the latest day's follow-ups plan: the soonest any of them asks for (two
/// monitors the same day, one asking to come back sooner: that visit is kept), whichever
/// observation counts for the alert (`latest_follow_up`).
pub fn planned_next<'a>(
    followups: impl Iterator<Item = &'a FollowUp> + Clone,
) -> Option<NaiveDate> {
    let latest = latest_follow_up(followups.clone())?;
    followups
        .filter(|f| f.date == latest.date)
        .filter_map(|f| f.next_due)
        .min()
}

impl FollowUpSituation {
    /// How worrying an observation is: still working, then not found (gone where no one sees
    /// them), at risk, withdrawn, in school.
    pub fn concern(self) -> u8 {
        match self {
            FollowUpSituation::StillWorking => 4,
            FollowUpSituation::NotFound => 3,
            FollowUpSituation::AtRisk => 2,
            FollowUpSituation::Withdrawn => 1,
            FollowUpSituation::InSchool => 0,
        }
    }
}

impl FollowUp {
    pub fn new(
        date: NaiveDate,
        situation: FollowUpSituation,
        next_due: Option<NaiveDate>,
    ) -> FollowUp {
        FollowUp {
            date,
            situation,
            notes: String::new(),
            next_due,
        }
    }
}

/// A child found working or at risk, and what was done for them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct ChildCase {
    /// Empty (nil) for a new record: the store gives it one.
    #[serde(skip)]
    #[cfg_attr(feature = "uniffi", uniffi(default = ""))]
    pub id: Uuid,
    #[serde(skip)]
    #[cfg_attr(feature = "uniffi", uniffi(default = ""))]
    pub version: Version,
    /// Pseudonymous code, the only identifier that appears in reports.
    pub case_code: String,
    /// The child's name: sensitive, never exported without the right.
    pub name: String,
    pub sex: Sex,
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub date_of_birth: Option<NaiveDate>,
    /// In years, when no date of birth is known (0 to 17).
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub estimated_age: Option<i32>,
    pub age_basis: AgeBasis,
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default = ""))]
    pub guardian: String,
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default = ""))]
    pub household: String,
    pub area: Area,
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub workplace_id: Option<Uuid>,
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub identified_on_visit: Option<Uuid>,
    pub identified_on: NaiveDate,
    /// Who identified the child, and whose due lists the case is on.
    pub identified_by: Uuid,
    pub school: SchoolStatus,
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default = ""))]
    pub activity: String,
    #[serde(with = "set_as_map", default)]
    #[cfg_attr(feature = "uniffi", uniffi(default = []))]
    pub tasks: BTreeSet<String>,
    /// 0 to 168.
    #[cfg_attr(feature = "uniffi", uniffi(default = 0))]
    pub hours_per_week: i32,
    #[cfg_attr(feature = "uniffi", uniffi(default = false))]
    pub night_work: bool,
    /// Codes from the hazardous work list of the rule set.
    #[serde(with = "set_as_map", default)]
    #[cfg_attr(feature = "uniffi", uniffi(default = []))]
    pub hazards: BTreeSet<String>,
    #[serde(with = "set_as_map", default)]
    #[cfg_attr(feature = "uniffi", uniffi(default = []))]
    pub worst_forms: BTreeSet<WorstForm>,
    /// Computed from the facts above by the rule set the case was captured with (read-only).
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub classification: Option<Classification>,
    pub status: CaseStatus,
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub referrals: BTreeMap<Uuid, Referral>,
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub followups: BTreeMap<Uuid, FollowUp>,
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default = ""))]
    pub notes: String,
    /// The day the child was verified withdrawn or prevented: the start of the follow-up
    /// schedule. Never cleared, so it is left out of the document when unset (an app that does
    /// not know the field cannot erase it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub remediated_on: Option<NaiveDate>,
    /// The next follow-up due, as `next_follow_up_due` tells it (derived on every write from
    /// `remediated_on`, the status, the follow-ups recorded and the child's age; read-only):
    /// the schedule's for a verified case, the latest follow-up's plan for a case not verified
    /// or reopened, none once closed or merged into another case.
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub follow_up_due: Option<NaiveDate>,
    /// Set on a duplicate registration: the case it was merged into. The duplicate keeps its
    /// status and history; lists, alerts, due lists and indicators leave it out (but see
    /// `is_merged_duplicate`). Cleared only by a supervisor's merge that settles a pair merged
    /// both ways, so it is written even when unset.
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub merged_into: Option<Uuid>,
    /// The duplicates merged into this case (written even when empty, like `merged_into`: a
    /// settling merge takes an entry out).
    #[serde(with = "set_as_map", default)]
    #[cfg_attr(feature = "uniffi", uniffi(default = []))]
    pub merged_from: BTreeSet<Uuid>,
    /// The reference versions the case was captured with: its country profile classifies it
    /// for good (set by the store when the case is created, kept by every update).
    #[serde(default, skip_serializing_if = "ReferencePins::is_empty")]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub captured_with: ReferencePins,
}

/// How many cases a chain of merges is followed through to the case kept last.
pub(crate) const MERGE_CHAIN: usize = 8;

impl ChildCase {
    /// A referral made now (`workflow::refer`) names a provider the referral directory in
    /// force lists, when it lists providers: one closed since the child was identified is no
    /// longer offered. Those made before stand (a merge brings them, an edit keeps them), and
    /// a phone that had not heard of the closing has its referral taken by the hub.
    pub fn check_referral_in_force(
        &self,
        provider: &str,
        reference: &ReferenceData,
    ) -> Result<(), ValidationError> {
        let listed = reference
            .referrals_in_force(&self.area.country)
            .filter(|d| !d.providers.is_empty());
        match listed {
            Some(directory) if directory.provider(provider).is_none() => Err(ValidationError::new(
                "referral.provider",
                "not a provider of the referral directory in force (closed, or never listed)",
            )),
            _ => Ok(()),
        }
    }

    /// Adds to this case, the one kept, what its duplicate `from` holds about the child and it
    /// lacks: referrals and follow-ups (under their keys), worst forms, night work, the longer
    /// working week, the schooling it did not know, and the hazards this case's rule set lists (`features::duplicates::merge`). With `taken`, the
    /// duplicate as a merge already took it, only what `from` holds beyond it: its new entries,
    /// and its corrections of entries the merge copied where this case's copy was not changed
    /// since; what the merge took and this case no longer holds was removed here since, on
    /// purpose (`store::documents::carry_over`). Whether this case changed.
    pub(crate) fn bring_over(
        &mut self,
        from: &ChildCase,
        taken: Option<&ChildCase>,
        reference: &ReferenceData,
    ) -> bool {
        let kept = self;
        let before = kept.clone();
        // The child was identified when the first registration was made: a duplicate
        // registered earlier gives the kept case its day (and its visit), so that what it
        // recorded since (a referral, a follow-up, a verification) is not dated before the
        // child was identified (the merge was refused, and a referral made offline on the
        // duplicate meanwhile stayed behind on it). The child's age on that day is the one its
        // registration recorded then (its date of birth, or its estimate of that day): an
        // estimate moved back by whole years made a child of 17 turn 18 up to a year early,
        // and three registrations merged in two orders gave two ages. Only in the supervisor's
        // own merge: a device carrying its edits over a received merge (`taken`) re-dates
        // nothing.
        if taken.is_none() && from.identified_on < kept.identified_on {
            kept.identified_on = from.identified_on;
            if from.identified_on_visit.is_some() {
                kept.identified_on_visit = from.identified_on_visit;
            }
            // An estimate is of its registration's day: the kept one's was of a later day
            // (kept beside a date of birth, it stood again once the date was cleared, the
            // child older by as much, and different by the order of the merges).
            kept.estimated_age = from.estimated_age;
            if kept.date_of_birth.is_none() {
                kept.date_of_birth = from.date_of_birth;
                kept.age_basis = from.age_basis;
            }
        }
        // A date of birth the duplicate recorded (a birth certificate seen) is the child's
        // where the kept case has only an estimate, when it fits the kept case's day.
        if kept.date_of_birth.is_none()
            && let Some(born) = from.date_of_birth
            && taken.is_none_or(|t| t.date_of_birth != Some(born))
        {
            kept.date_of_birth = Some(born);
            if kept.age_fits_identification() {
                kept.age_basis = from.age_basis;
            } else {
                kept.date_of_birth = None;
            }
        }
        // The last verification either registration saw: a referral dated by it served the
        // episode it ended, whichever case is kept.
        let verified = kept.remediated_on.max(from.remediated_on);
        let mut referred_since = false;
        for (key, referral) in &from.referrals {
            match (
                taken.and_then(|t| t.referrals.get(key)),
                kept.referrals.get_mut(key),
            ) {
                (None, None) => {
                    kept.referrals.insert(*key, referral.clone());
                    // Not one of the episode a reopening started.
                    referred_since |= verified.is_none_or(|v| referral.date > v);
                }
                // Corrected on the duplicate since the merge copied it (its outcome, its
                // provider): the correction is the child's too.
                (Some(was), Some(here)) => {
                    carry_field(&mut here.service, &referral.service, &was.service);
                    carry_field(&mut here.provider, &referral.provider, &was.provider);
                    carry_field(&mut here.date, &referral.date, &was.date);
                    carry_field(&mut here.outcome, &referral.outcome, &was.outcome);
                }
                // Removed here since the merge, on purpose; or here already.
                (Some(_), None) | (None, Some(_)) => {}
            }
        }
        // A referral moves an identified case to referred (`refer`): the child the duplicate
        // referred is a referred child (counted so), not one identified and waiting. Only a
        // referral brought here does: a case reopened keeps its earlier referrals, and waits
        // for a new one.
        if kept.status == CaseStatus::Identified && referred_since {
            kept.status = CaseStatus::Referred;
        }
        for (key, follow_up) in &from.followups {
            match (
                taken.and_then(|t| t.followups.get(key)),
                kept.followups.get_mut(key),
            ) {
                (None, None) => {
                    kept.followups.insert(*key, follow_up.clone());
                }
                // A follow-up the merge copied and its monitor corrected on the duplicate
                // since ("at risk" found to be "still working", the next visit brought
                // forward): the kept case's alert and due date follow the correction, unless
                // the kept case's own copy was changed too (then it stands).
                (Some(was), Some(here)) => {
                    carry_field(&mut here.date, &follow_up.date, &was.date);
                    carry_field(&mut here.situation, &follow_up.situation, &was.situation);
                    carry_field(&mut here.notes, &follow_up.notes, &was.notes);
                    carry_field(&mut here.next_due, &follow_up.next_due, &was.next_due);
                }
                (Some(_), None) | (None, Some(_)) => {}
            }
        }
        // What the duplicate's record says the child was exposed to stays on the child's case: a
        // worst form or a hazard flagged on either registration is the child's (the kept case's
        // classification and alert follow). Hazards go by the kept case's rule set: a code it
        // does not list would not validate there.
        kept.worst_forms.extend(
            from.worst_forms
                .iter()
                .filter(|w| taken.is_none_or(|t| !t.worst_forms.contains(w))),
        );
        kept.night_work |= from.night_work && taken.is_none_or(|t| !t.night_work);
        // Long hours are a hazard of their own (R190): the longer week either registration
        // recorded is the child's.
        if from.hours_per_week > kept.hours_per_week
            && taken.is_none_or(|t| from.hours_per_week > t.hours_per_week)
        {
            kept.hours_per_week = from.hours_per_week;
        }
        // Whether the child goes to school decides light work: what either registration knew
        // stands for a case that did not know it.
        if kept.school == SchoolStatus::Unknown
            && from.school != SchoolStatus::Unknown
            && taken.is_none_or(|t| t.school != from.school)
        {
            kept.school = from.school;
        }
        if let Ok(rules) = reference.rule_set_of(kept) {
            let known: Vec<String> = from
                .hazards
                .iter()
                .filter(|h| rules.has_hazard(h) && taken.is_none_or(|t| !t.hazards.contains(*h)))
                .cloned()
                .collect();
            kept.hazards.extend(known);
        }
        // Corrected on the duplicate since the merge copied it (the child found to have dropped
        // out of school, her age set right): the correction is the child's, as a follow-up's is
        // (`carry_field`): the kept case's classification follows. An age only where it fits
        // the kept case's day (an estimate is of its registration's day).
        if let Some(t) = taken {
            carry_field(&mut kept.school, &from.school, &t.school);
            let age = (kept.date_of_birth, kept.estimated_age, kept.age_basis);
            carry_field(
                &mut kept.date_of_birth,
                &from.date_of_birth,
                &t.date_of_birth,
            );
            if kept.identified_on == from.identified_on {
                carry_field(
                    &mut kept.estimated_age,
                    &from.estimated_age,
                    &t.estimated_age,
                );
            }
            if (kept.date_of_birth, kept.estimated_age) != (age.0, age.1) {
                kept.age_basis = from.age_basis;
            }
            if !kept.age_fits_identification() {
                (kept.date_of_birth, kept.estimated_age, kept.age_basis) = age;
            }
        }
        // A child the duplicate's registration saw verified withdrawn or prevented was: the
        // kept case keeps the day as history (as a reopened case does: it schedules nothing
        // until the kept case is verified itself), so that the child stays counted as having
        // reached it. Only in the supervisor's own merge: a device carrying its edits over
        // a received merge (`taken`) verifies nothing.
        if taken.is_none() && kept.remediated_on.is_none() && from.remediated_on.is_some() {
            kept.remediated_on = from.remediated_on;
        }
        *kept != before
    }

    /// A new case (status identified), as declared by a guardian, schooling unknown. Set
    /// `date_of_birth` or `estimated_age` before creating it.
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
        let estimate = u32::try_from(self.estimated_age?).ok()?;
        Some(estimate + date.years_since(self.identified_on).unwrap_or(0))
    }

    /// Whether the child's age fields make a child of 0 to 17 on the day of identification,
    /// born by then (what `validate` asks of them): a date of birth or an estimate a merge
    /// brings over is taken only so.
    fn age_fits_identification(&self) -> bool {
        self.date_of_birth
            .is_none_or(|born| born <= self.identified_on)
            && self.age_on(self.identified_on).is_some_and(|age| age <= 17)
    }

    /// The day the child reaches `age`: from the date of birth, else from the estimate made on
    /// the day of identification (the child is taken to have just reached the estimated age).
    pub fn reaches_age_on(&self, age: u32) -> Option<NaiveDate> {
        let (from, years) = match (self.date_of_birth, self.estimated_age) {
            (Some(dob), _) => (dob, age),
            (None, Some(estimate)) => (
                self.identified_on,
                age.saturating_sub(u32::try_from(estimate).ok()?),
            ),
            (None, None) => return None,
        };
        let reached = from.checked_add_months(Months::new(years.checked_mul(12)?))?;
        // A 29 February birthday is reached on 1 March in other years, as `age_on` counts it
        // (adding months would stop on 28 February, a day early).
        if reached.day() != from.day() {
            reached.succ_opt()
        } else {
            Some(reached)
        }
    }

    /// The child's 18th birthday, when the age is known: from that day the person is no longer
    /// a child (C182 art. 2), and the case raises no alert (`derived::case_severity`).
    pub fn adult_on(&self) -> Option<NaiveDate> {
        self.reaches_age_on(18)
    }

    /// Whether this case is a duplicate merged into another, and left out of lists, alerts,
    /// due lists and indicators. Two supervisors who merged the same pair offline in opposite
    /// directions leave each case naming the other both as the case it was merged into and as a
    /// duplicate merged into it: neither is then a duplicate (both stay in view, nothing is
    /// lost) until a supervisor merges them again, which settles it (`merge`).
    pub fn is_merged_duplicate(&self) -> bool {
        self.merged_into
            .is_some_and(|into| !self.merged_from.contains(&into))
    }

    /// The case this one was merged into, for a merged duplicate (`is_merged_duplicate`).
    pub fn kept_as(&self) -> Option<Uuid> {
        self.merged_into.filter(|_| self.is_merged_duplicate())
    }

    /// The child the case `id` stands for: the case kept at the end of its merges (a merged
    /// duplicate and the case it was merged into are one child). `kept_as(id)` tells what
    /// is known of a case: `None` that it is none (erased), `Some(None)` that it is kept,
    /// `Some(Some(into))` that it was merged into `into`. `None` if `id` names no case.
    pub fn child_of(id: Uuid, kept_as: impl Fn(Uuid) -> Option<Option<Uuid>>) -> Option<Uuid> {
        let mut id = id;
        // A chain of merges is short; the bound only guards against a cycle.
        for _ in 0..64 {
            match kept_as(id)? {
                Some(into) => id = into,
                None => return Some(id),
            }
        }
        Some(id)
    }

    /// The next follow-up due: for a case tracked after its verification, the one the schedule
    /// plans (it goes on, yearly, after the case is closed, until the child's 18th birthday);
    /// for a case not verified (or reopened), the one planned at the latest follow-up, or none
    /// once closed. A duplicate merged into another case has none. Never on or after the 18th
    /// birthday as the record now gives it: a follow-up's plan was made with the birth date
    /// known then.
    pub fn next_follow_up_due(&self) -> Option<NaiveDate> {
        if self.is_merged_duplicate() {
            return None;
        }
        if self.follow_up_due.is_some() || self.is_tracked() {
            return self.follow_up_due;
        }
        if self.status == CaseStatus::Closed {
            return None;
        }
        planned_next(self.followups.values())
            .filter(|due| self.adult_on().is_none_or(|adult| *due < adult))
    }

    /// The follow-up due as the due lists show it on `day`: `next_follow_up_due`, none once
    /// the child is 18 on that day (the lists leave the case then, whatever date was due).
    /// `adult_on`: the day the child turns 18 as the lists have it, by the readings of values
    /// in conflict (`adult_on_in_conflict`; `Store::get_case_with_adult_day`).
    pub fn follow_up_due_on(
        &self,
        day: NaiveDate,
        adult_on: Option<NaiveDate>,
    ) -> Option<NaiveDate> {
        self.next_follow_up_due()
            .filter(|_| adult_on.is_none_or(|adult| adult > day))
    }

    /// Whether the case is tracked after a verification: verified (`remediated_on`) and
    /// withdrawn, prevented or closed. A case reopened after its verification keeps the date as
    /// history but is not tracked until it is verified again.
    pub fn is_tracked(&self) -> bool {
        self.remediated_on.is_some()
            && matches!(
                self.status,
                CaseStatus::Withdrawn | CaseStatus::Prevented | CaseStatus::Closed
            )
    }

    /// The facts the rules decide on, as of the day the child was identified.
    pub fn situation(&self) -> Situation<'_> {
        Situation {
            age: self.age_on(self.identified_on),
            hours_per_week: self.hours_per_week,
            night_work: self.night_work,
            hazards: &self.hazards,
            worst_form: !self.worst_forms.is_empty(),
            school: self.school,
            // A child registered on a visit to a workplace was found at work there, as the
            // visit's alert counts her (`derived::visit_severity`), whatever could be noted.
            work_described: !self.activity.trim().is_empty()
                || !self.tasks.is_empty()
                || self.identified_on_visit.is_some(),
        }
    }
}

/// What the rules say of a child case.
impl RuleSet {
    /// Classifies a child's situation on the day the child was identified.
    pub fn classify(&self, case: &ChildCase) -> Classification {
        self.classify_situation(&case.situation())
    }

    /// The follow-up a case is due next: none before remediation, nor while a reopened case is
    /// back before verification (`ChildCase::is_tracked`); else the first scheduled date after
    /// the latest follow-up recorded since remediation (a follow-up made late still answers the
    /// visits due before it, one made up to `EARLY_FOLLOW_UP_DAYS` early the one it precedes). Never on or after the
    /// day the child reaches `follow_up_yearly_until_age` (DOMAIN.md: "checked yearly until the
    /// child turns 18"): the 3- and 6-month visits of a child verified shortly before that day
    /// are not planned past it. Without a birth date or an estimated age, the 3- and 6-month
    /// visits are planned and no yearly one. The schedule is the longest a child waits: the
    /// latest follow-up may plan the next one sooner (its `next_due`: a child still at risk is
    /// seen again in a month), never later; where the schedule plans nothing more (no age
    /// known after the 6-month visit), its plan stands.
    pub fn next_follow_up(&self, case: &ChildCase) -> Option<NaiveDate> {
        if !case.is_tracked() {
            return None;
        }
        let start = case.remediated_on?;
        let since = case.followups.values().filter(|f| f.date >= start);
        let last = latest_follow_up(since.clone()).map_or(start, |f| f.date);
        let adult_on = case.reaches_age_on(self.thresholds.follow_up_yearly_until_age);
        let scheduled = self.next_follow_up_after(start, adult_on, last);
        let planned = planned_next(since);
        let due = match (scheduled, planned) {
            (Some(scheduled), Some(planned)) => Some(scheduled.min(planned)),
            (scheduled, planned) => scheduled.or(planned),
        };
        due.filter(|due| adult_on.is_none_or(|adult| *due < adult))
    }
}

/// Checks that no follow-up of `after` plans the next one (`next_due`) on or after the day the
/// child comes of age, by the profile the case was captured with, where `before` planned
/// otherwise: a plan set or moved, not one set before a date of birth was corrected (the due
/// lists leave those out), nor where the changes judged correct the child's age too (a phone
/// that planned, then corrected the date of birth, offline, pushes both at once: each of its
/// writes passed). A profile this device lacks judges nothing here (the hub, which holds it,
/// does). The one rule of a device's own writes, of its workflow calls and of the hub's
/// pushes; a record of another kind passes.
pub(crate) fn plans_within_childhood(
    before: Option<super::Subject<'_>>,
    after: super::Subject<'_>,
    reference: &ReferenceData,
) -> Result<(), ValidationError> {
    let super::Subject::ChildCase(after) = after else {
        return Ok(());
    };
    let before = match before {
        Some(super::Subject::ChildCase(before)) => Some(before),
        _ => None,
    };
    if before.is_some_and(|b| {
        (b.date_of_birth, b.estimated_age) != (after.date_of_birth, after.estimated_age)
    }) {
        return Ok(());
    }
    let Ok(rules) = reference.rule_set_of(after) else {
        return Ok(());
    };
    let age = rules.thresholds.follow_up_yearly_until_age;
    let Some(adult) = after.reaches_age_on(age) else {
        return Ok(());
    };
    let planned_before = |id: &Uuid| {
        before
            .and_then(|b| b.followups.get(id))
            .and_then(|f| f.next_due)
    };
    match after.followups.iter().find(|(id, f)| {
        f.next_due
            .is_some_and(|next| next >= adult && Some(next) != planned_before(id))
    }) {
        Some((id, _)) => Err(ValidationError::new(
            format!("followups.{id}.next_due"),
            of_age_rule(age, adult),
        )),
        None => Ok(()),
    }
}

/// The rule a follow-up planned on or after the day the child comes of age breaks.
fn of_age_rule(age: u32, adult: NaiveDate) -> String {
    format!(
        "must be before the day the child turns {age}, {}-{:02}-{:02} (no follow-up is due after)",
        adult.year(),
        adult.month(),
        adult.day()
    )
}

impl ChildCase {
    fn derive_with(&mut self, rules: &RuleSet) {
        self.classification = Some(rules.classify(self));
        // The schedule's date, then what the due lists, the alerts and the console read
        // (`next_follow_up_due`): an app showing the field shows the same date.
        self.follow_up_due = rules.next_follow_up(self);
        self.follow_up_due = self.next_follow_up_due();
    }
}

impl ReferenceData {
    /// The rule set a case was captured with (`rule_set_of`), or on a device that lacks that
    /// one the nearest it holds: the newest version of the same profile, else its country's
    /// profile.
    fn rule_set_or_provisional(&self, case: &ChildCase) -> &RuleSet {
        if let Ok(rules) = self.rule_set_of(case) {
            return rules;
        }
        case.captured_with
            .country_profile
            .as_ref()
            .and_then(|pin| {
                let latest = self.latest_version(ReferenceType::CountryProfile, &pin.key)?;
                self.rule_set_at(&pin.key, latest)
            })
            .unwrap_or_else(|| self.rule_set_for_country(&case.area.country))
    }

    /// The rule set a case is classified with: the profile it was captured with; for a case
    /// captured before profiles were pinned, the one its classification names, else the
    /// built-in one.
    pub fn rule_set_of(&self, case: &ChildCase) -> Result<&RuleSet, ValidationError> {
        self.rule_set_captured(
            case.captured_with.country_profile.as_ref(),
            case.classification.as_ref().map(|c| c.rule_set.as_str()),
        )
    }
}

impl Record for ChildCase {
    const KIND: RecordKind = RecordKind::ChildCase;
    /// A referral's outcome is a short statement ("treated", "refused by the guardian"): two
    /// people's concurrent outcomes are a conflict kept and shown, never a blend of both.
    const TEXT_FIELDS: &'static [&'static str] = &["notes", "followups.*.notes"];
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

    fn subject(&self) -> super::Subject<'_> {
        super::Subject::ChildCase(self)
    }

    /// A hazard the profile the case was captured with does not list, which the profile in
    /// force does: the case moves to the profile in force, if that lists every hazard it holds
    /// (else validation names the one the case's profile lacks).
    fn follow_reference_in_force(&mut self, reference: &ReferenceData) {
        let Ok(pinned) = reference.rule_set_of(self) else {
            return;
        };
        if self.hazards.iter().all(|h| pinned.has_hazard(h)) {
            return;
        }
        let Some(in_force) =
            reference.active_pin(ReferenceType::CountryProfile, Some(&self.area.country))
        else {
            return;
        };
        let lists_all = reference
            .rule_set_at(&in_force.key, in_force.version)
            .is_some_and(|rules| self.hazards.iter().all(|h| rules.has_hazard(h)));
        if lists_all {
            self.captured_with.country_profile = Some(in_force);
        }
    }

    fn free_texts(&self) -> Vec<(String, &str)> {
        let mut texts = vec![("notes".to_string(), self.notes.as_str())];
        texts.extend(
            self.referrals
                .iter()
                .map(|(id, r)| (format!("referrals.{id}.outcome"), r.outcome.as_str())),
        );
        texts.extend(
            self.followups
                .iter()
                .map(|(id, f)| (format!("followups.{id}.notes"), f.notes.as_str())),
        );
        texts
    }

    fn event_dates(&self) -> Vec<(String, NaiveDate)> {
        let mut dates = vec![("identified_on".to_string(), self.identified_on)];
        dates.extend(self.remediated_on.map(|d| ("remediated_on".to_string(), d)));
        dates.extend(
            self.referrals
                .iter()
                .map(|(id, r)| (format!("referrals.{id}.date"), r.date)),
        );
        dates.extend(
            self.followups
                .iter()
                .map(|(id, f)| (format!("followups.{id}.date"), f.date)),
        );
        dates
    }

    fn references(&self) -> Vec<super::Reference> {
        let mut named = Vec::new();
        if let Some(id) = self.workplace_id {
            named.push(("workplace_id", id, RecordKind::Workplace));
        }
        if let Some(id) = self.identified_on_visit {
            named.push(("identified_on_visit", id, RecordKind::Visit));
        }
        named
    }

    fn validate(&self, reference: &ReferenceData) -> Result<(), ValidationError> {
        super::optional_reference("workplace_id", self.workplace_id)?;
        super::optional_reference("identified_on_visit", self.identified_on_visit)?;
        // A case code is a code, as the reference data's: it is searched by its tail, shown in
        // every list and report, and written in file names of exports.
        if !valid_code(&self.case_code) {
            return Err(ValidationError::new(
                "case_code",
                format!("must be 1 to {MAX_CODE_CHARS} printable ASCII characters without spaces"),
            ));
        }
        require_line("name", &self.name)?;
        optional_line("guardian", &self.guardian, MAX_LINE_CHARS)?;
        optional_line("household", &self.household, MAX_LINE_CHARS)?;
        optional_line("activity", &self.activity, MAX_LINE_CHARS)?;
        at_most_entries("tasks", self.tasks.len(), MAX_TASKS)?;
        at_most_entries("referrals", self.referrals.len(), MAX_REFERRALS)?;
        at_most_entries("followups", self.followups.len(), MAX_FOLLOWUPS)?;
        at_most_entries("merged_from", self.merged_from.len(), MAX_MERGED_CASES)?;
        // No reference data lists tasks: each is a short label, as long as a code at most. The
        // field is named without the task (typed by a person).
        if self
            .tasks
            .iter()
            .any(|t| looks_empty(t) || !is_one_line(t, MAX_CODE_CHARS))
        {
            return Err(ValidationError::new(
                "tasks",
                format!(
                    "each task must be 1 to {MAX_CODE_CHARS} characters on one line, without control or text-direction characters"
                ),
            ));
        }
        let mut dates = self.event_dates();
        dates.extend(self.date_of_birth.map(|d| ("date_of_birth".to_string(), d)));
        // A follow-up's plan is no event (it may fall after today), but a day of the calendar
        // all the same: the case's due date follows it.
        dates.extend(
            self.followups
                .iter()
                .filter_map(|(id, f)| f.next_due.map(|d| (format!("followups.{id}.next_due"), d))),
        );
        super::within_calendar(&dates)?;
        self.area.validate("area")?;
        if self.identified_by.is_nil() {
            return Err(ValidationError::new("identified_by", "must be set"));
        }
        // An estimate beside a date of birth is still shown and exported: held to the same
        // range (400 was taken, and exported, when a date of birth came with it).
        if self
            .estimated_age
            .is_some_and(|age| !(0..=17).contains(&age))
        {
            return Err(ValidationError::new(
                "estimated_age",
                "must be between 0 and 17",
            ));
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
            (None, Some(_)) => {}
        }
        if !(0..=168).contains(&self.hours_per_week) {
            return Err(ValidationError::new(
                "hours_per_week",
                "must be between 0 and 168",
            ));
        }
        for (id, r) in &self.referrals {
            require_line(&format!("referrals.{id}.provider"), &r.provider)?;
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
        // Last, what the reference data the case was captured with decides: a device that
        // lacks those versions has judged every other rule first (`records::judged_elsewhere`).
        reference.check_area(
            self.captured_with.administrative_areas.as_ref(),
            &self.area,
            "area",
        )?;
        let rules = reference.rule_set_of(self)?;
        if let Some(code) = self.hazards.iter().find(|h| !rules.has_hazard(h)) {
            let field = if code.len() <= 32 && code.chars().all(|c| c.is_ascii_graphic()) {
                format!("hazards.{code}")
            } else {
                "hazards".to_string()
            };
            // On the list in force, which the case did not move to: it holds a hazard that
            // list dropped (`follow_reference_in_force`).
            if reference
                .rule_set_for_country(&self.area.country)
                .has_hazard(code)
            {
                return Err(ValidationError::new(
                    field,
                    "not on the list this case is classified with, and the list in force no longer holds another of its hazards",
                ));
            }
            return Err(ValidationError::new(field, "unknown hazard code"));
        }
        // A directory that lists providers lists every provider a child may be referred to:
        // the referral then names one by its code, of the directory the case was captured with
        // or of the one in force (a service opened since the child was identified).
        let directory = reference
            .pinned_referrals(self.captured_with.referral_services.as_ref())?
            .filter(|d| !d.providers.is_empty());
        let in_force = reference.referrals_in_force(&self.area.country);
        let provider = |code: &str| {
            directory
                .and_then(|d| d.provider(code))
                .or_else(|| in_force.and_then(|d| d.provider(code)))
        };
        for (id, r) in self.referrals.iter().filter(|_| directory.is_some()) {
            match provider(&r.provider) {
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
        Ok(())
    }

    /// With the profile the case was captured with. If this device does not know that version
    /// yet, the derived fields are left as they are (the last writer's, who knew it) and
    /// validation says why.
    fn derive(&mut self, reference: &ReferenceData) {
        if let Ok(rules) = reference.rule_set_of(self) {
            self.derive_with(rules);
        }
    }

    /// Two devices' writes merged (through a peer, say) on a device that lacks the version
    /// the case was captured with: their derived fields, each right for its own write, mixed
    /// field by field, are right for neither (a classification at 15 for a reason that holds
    /// from 16, an alert missing). They are worked out provisionally with the newest version
    /// of that profile the device holds, which the classification names, until the version
    /// comes with the next sync; writes stay refused until then.
    fn derive_merged(&mut self, reference: &ReferenceData) {
        let rules = reference.rule_set_or_provisional(self);
        self.derive_with(rules);
    }

    /// Its status decides its alert and due date, not its classification: two supervisors,
    /// one closing the case and one reopening it, leave it alerting until one is chosen.
    const DECIDING: &'static [&'static str] = &[
        STATUS,
        "hours_per_week",
        "night_work",
        "school",
        "date_of_birth",
        "estimated_age",
        "identified_on",
    ];

    /// A follow-up's day, situation and next visit decide the case's alert, its due date and
    /// whether it may be closed.
    const NESTED_DECIDING: &'static [(&'static str, &'static [&'static str])] =
        &[(FOLLOW_UPS, &["date", "situation", "next_due"])];

    /// Two monitors who found a child working 50 hours and 12 hours a week, each on their
    /// phone: which value the merge shows is Automerge's pick, not a finding. Until someone
    /// chooses, the case is classified by the most severe reading of the values in conflict
    /// (as a merge of duplicates keeps the longer week and every hazard), so that the alert
    /// and the lists do not hang on that pick; the reason names the value that decided it.
    fn derive_in_conflict(&mut self, reference: &ReferenceData, concurrent: &[Concurrent]) {
        let rules = reference.rule_set_or_provisional(self);
        // The follow-up due by the reading that keeps the child a minor longest: a date of
        // birth making her 18 must not take her off the due lists while another says 16. Of
        // the readings of its follow-ups in conflict, the soonest next visit: two monitors who
        // planned it for next week and next month see the child due next week until one of
        // them is chosen.
        // Of a status in conflict, the soonest due by any of its values.
        let longest = self.longest_a_minor(concurrent);
        let followups = self.followup_readings(concurrent);
        let statuses = self.status_readings(concurrent);
        if longest.is_some() || !followups.is_empty() || statuses.len() > 1 {
            let mut base = longest.unwrap_or_else(|| self.clone());
            let readings = match followups.is_empty() {
                true => vec![base.followups.clone()],
                false => followups,
            };
            let mut dues = Vec::new();
            for status in statuses {
                for followups in &readings {
                    base.status = status;
                    base.followups = followups.clone();
                    base.derive_with(rules);
                    dues.extend(base.follow_up_due);
                }
            }
            self.follow_up_due = dues.into_iter().min();
        }
        let Some(shown) = self.classification.clone() else {
            return;
        };
        let Ok(serde_json::Value::Object(base)) = serde_json::to_value(&*self) else {
            return;
        };
        // Follow-ups and the status decide no classification, and their readings are no
        // reason to give.
        let deciding: Vec<Concurrent> = concurrent
            .iter()
            .filter(|(field, _)| Self::DECIDING.contains(field) && *field != STATUS)
            .cloned()
            .collect();
        let mut worst: Option<(Classification, Vec<(&str, &serde_json::Value)>)> = None;
        for (variant, reading) in self.readings(&deciding) {
            let found = rules.classify(&variant);
            if worst
                .as_ref()
                .is_none_or(|(w, _)| (found.outcome as i32) > (w.outcome as i32))
            {
                worst = Some((found, reading));
            }
        }
        let Some((mut worst, reading)) = worst else {
            return;
        };
        if (worst.outcome as i32) <= (shown.outcome as i32) {
            return;
        }
        let by: Vec<String> = reading
            .iter()
            .filter(|(field, value)| base.get(*field) != Some(*value))
            .map(|(field, value)| format!("{field} {value}"))
            .collect();
        worst.reason = format!(
            "{}{}{}{}",
            worst.reason,
            crate::domain::classify::IN_CONFLICT_OPEN,
            by.join(", "),
            crate::domain::classify::IN_CONFLICT_CLOSE,
        );
        self.classification = Some(worst);
    }
}

impl ChildCase {
    /// The case as each combination of the values in conflict would have it (a few: two
    /// devices, a field or two), with the values of that reading.
    fn readings<'c>(
        &self,
        concurrent: &'c [Concurrent],
    ) -> Vec<(ChildCase, Vec<(&'c str, &'c serde_json::Value)>)> {
        let Ok(serde_json::Value::Object(base)) = serde_json::to_value(self) else {
            return Vec::new();
        };
        let mut readings: Vec<Vec<(&str, &serde_json::Value)>> = vec![Vec::new()];
        for (field, values) in concurrent {
            readings = readings
                .into_iter()
                .flat_map(|reading| {
                    values.iter().map(move |value| {
                        let mut reading = reading.clone();
                        reading.push((*field, value));
                        reading
                    })
                })
                .take(MAX_READINGS)
                .collect();
        }
        readings
            .into_iter()
            .filter_map(|reading| {
                let mut json = base.clone();
                for (field, value) in &reading {
                    json.insert((*field).to_string(), (*value).clone());
                }
                let mut variant: ChildCase =
                    serde_json::from_value(serde_json::Value::Object(json)).ok()?;
                variant.id = self.id;
                Some((variant, reading))
            })
            .collect()
    }

    /// The day the child turns 18 (`adult_on`) by the latest of the readings in conflict: two
    /// devices' dates of birth (or estimates, or days of identification) side by side, the
    /// child counts as a minor until every one of them says 18, so that the case's alert and
    /// its place in the due lists never hang on which value the merge happened to show (as
    /// its classification does not, `derive_in_conflict`). None while a reading knows no age.
    pub fn adult_on_in_conflict(&self, concurrent: &[Concurrent]) -> Option<NaiveDate> {
        match self.longest_a_minor(concurrent) {
            Some(longest) => longest.adult_on(),
            None => self.adult_on(),
        }
    }

    /// The case's follow-ups as each reading of those holding values side by side has them
    /// (the record's own first: two monitors' corrections of one follow-up's situation, or of
    /// its next visit); none while none does. Alerts, due dates and the closing rule weigh
    /// every one, until someone chooses (`derived::case_alert_in_conflict`,
    /// `rights::check_case_facts_in_conflict`).
    pub fn followup_readings(&self, concurrent: &[Concurrent]) -> Vec<BTreeMap<Uuid, FollowUp>> {
        concurrent
            .iter()
            .filter(|(field, _)| *field == FOLLOW_UPS)
            .flat_map(|(_, readings)| readings)
            .filter_map(|reading| serde_json::from_value(reading.clone()).ok())
            .collect()
    }

    /// The statuses the case holds side by side (one supervisor closed it while another
    /// reopened it), the record's own first; only its own when its status is in no conflict.
    /// Its alert and due date weigh each (`derived::case_alert_in_conflict`).
    pub fn status_readings(&self, concurrent: &[Concurrent]) -> Vec<CaseStatus> {
        let mut statuses = vec![self.status];
        for value in concurrent
            .iter()
            .filter(|(field, _)| *field == STATUS)
            .flat_map(|(_, values)| values)
        {
            if let Ok(status) = serde_json::from_value::<CaseStatus>(value.clone())
                && !statuses.contains(&status)
            {
                statuses.push(status);
            }
        }
        statuses
    }

    /// Of the readings of the values in conflict that decide the child's age, the one in
    /// which the child turns 18 last (or never: no age known); none when none is in conflict.
    fn longest_a_minor(&self, concurrent: &[Concurrent]) -> Option<ChildCase> {
        let ages: Vec<Concurrent> = concurrent
            .iter()
            .filter(|(field, _)| AGE_DECIDING.contains(field))
            .cloned()
            .collect();
        if ages.is_empty() {
            return None;
        }
        // `None` (never 18) after every day.
        self.readings(&ages)
            .into_iter()
            .map(|(variant, _)| variant)
            .max_by_key(|variant| variant.adult_on().map_or((1, None), |day| (0, Some(day))))
    }
}

/// A case's status, which decides its alert and due date (`ChildCase::status_readings`).
const STATUS: &str = "status";

/// The root map of a case's follow-ups, whose entries' values side by side derived facts
/// weigh (`Record::NESTED_DECIDING`).
const FOLLOW_UPS: &str = "followups";

/// The fields the day a child turns 18 is worked out from (`ChildCase::reaches_age_on`).
const AGE_DECIDING: [&str; 3] = ["date_of_birth", "estimated_age", "identified_on"];

/// The readings of a case in conflict weighed at most (each a combination of its values).
const MAX_READINGS: usize = 64;

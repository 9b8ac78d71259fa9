//! Child labour classification by a versioned rule set (a country profile).
//!
//! The thresholds follow ILO C138 and C182; each country sets its own within them
//! (`Thresholds`, what a published `CountryProfile` holds), so a rule set is data, and a
//! classification remembers which rule set and version produced it.

use super::codes::{ClassificationOutcome, SchoolStatus};
use super::reference::labels::Item;
use chrono::{Months, NaiveDate};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// How many days before a scheduled follow-up a follow-up made answers it (the schedule's
/// dates are a plan, not a day the visit must fall on).
pub const EARLY_FOLLOW_UP_DAYS: u64 = 14;

/// The rule set's reading of a case, computed from the case's facts on every write and read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Classification {
    pub outcome: ClassificationOutcome,
    /// `id@version` of the rule set that produced it.
    pub rule_set: String,
    /// The age the rules were applied to, if it could be established.
    pub age: Option<i32>,
    /// Which rule decided, for the person reviewing the case.
    pub reason: String,
}

/// What a country sets within the conventions: the ages and hours that decide a child's
/// classification, its hazardous work list, and how remediated cases are followed up. A
/// published `CountryProfile` holds them, and the `RuleSet` made from it applies them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thresholds {
    /// C138 minimum age for admission to employment (15, or 14 at first in a developing country).
    pub minimum_age: u32,
    /// Light work is allowed from this age (13, or 12 where the minimum age is 14).
    pub light_work_min_age: u32,
    /// Light work beyond this many hours a week is no longer light.
    pub light_work_max_hours: u32,
    /// Hazardous work is forbidden below this age (18; 16 exceptionally).
    pub hazardous_work_age: u32,
    /// Hours a week above which work is hazardous for a child (long hours, R190).
    pub long_hours: u32,
    pub night_work_is_hazardous: bool,
    /// The national hazardous work list: the codes a child case's `hazards` may hold.
    pub hazardous_work: Vec<Item>,
    /// Follow-up visits after remediation (withdrawn or prevented), in months after it.
    #[serde(default = "default_follow_up_months")]
    pub follow_up_months: Vec<u32>,
    /// After the last of `follow_up_months`, a follow-up every year while the child is younger
    /// than this age.
    #[serde(default = "default_follow_up_yearly_until_age")]
    pub follow_up_yearly_until_age: u32,
}

fn default_follow_up_months() -> Vec<u32> {
    vec![3, 6]
}

fn default_follow_up_yearly_until_age() -> u32 {
    18
}

/// A country profile's thresholds as the classifier applies them, named `id@version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSet {
    pub id: String,
    pub version: u32,
    #[serde(flatten)]
    pub thresholds: Thresholds,
}

/// The facts about a child's work that the rules decide on.
#[derive(Debug, Clone, Copy)]
pub struct Situation<'a> {
    /// The age when the child was identified, if it could be established.
    pub age: Option<u32>,
    pub hours_per_week: i32,
    pub night_work: bool,
    pub hazards: &'a BTreeSet<String>,
    /// Whether a worst form (C182 art. 3 a-c) is flagged.
    pub worst_form: bool,
    /// Whether the child goes to school (light work is allowed only outside school hours).
    pub school: SchoolStatus,
    /// Whether the work the child does was described (an activity or tasks), or the child was
    /// found at a workplace on a visit: work, whatever hours were noted (0 when the monitor
    /// could not establish them).
    pub work_described: bool,
}

/// The note around the fields and values that decided a classification made by a value in
/// conflict (`ChildCase::derive_in_conflict`), after the rule's reason; `messages` reads it back
/// to say it in the user's language.
pub const IN_CONFLICT_OPEN: &str = " (by a value in conflict: ";
pub const IN_CONFLICT_CLOSE: &str = "; resolve the conflict)";

/// The age below which a person is a child (C182 art. 2): hazardous work, long hours and night
/// work are child labour below it whatever a country's exception allows.
pub const CHILD_BELOW_AGE: u32 = 18;

/// The hazards the exception from 16 never covers: the ILO default list, which is R190's.
///
/// DOMAIN.md: "Hazardous work: minimum **18** (**16** exceptionally, with full protection of
/// health and safety)", and "R190 hazards to consider for (d): physical, psychological or
/// sexual abuse; work underground, under water, at dangerous heights or in confined spaces;
/// dangerous machinery, equipment, tools, or heavy loads; unhealthy environments (substances,
/// temperatures, noise, vibration); long hours or night work, or being unreasonably confined
/// to the premises." No protection makes abuse, or these conditions observed in the field,
/// safe for a child: a 16- or 17-year-old found exposed to one of them is in hazardous child
/// labour (C182 art. 3 d) even where the profile's hazardous work age is 16, and so are long
/// hours and night work below 18. What the exception may still cover is a country's own
/// listed work beyond R190's (a national code such as a trade learnt under supervision).
/// The codes are the built-in profile's (`reference/builtin.json`); a country that lists these
/// hazards uses the same codes.
pub const NEVER_FROM_16: &[&str] = &[
    "abuse",
    "underground",
    "underwater",
    "heights",
    "confined_spaces",
    "dangerous_machinery",
    "sharp_tools",
    "heavy_loads",
    "pesticides",
    "mercury",
    "extreme_temperatures",
    "noise_vibration",
    "burning",
    "confinement",
];

impl RuleSet {
    pub fn label(&self) -> String {
        format!("{}@{}", self.id, self.version)
    }

    pub fn has_hazard(&self, code: &str) -> bool {
        self.thresholds
            .hazardous_work
            .iter()
            .any(|h| h.code == code)
    }

    /// Classifies a child's situation.
    pub fn classify_situation(&self, situation: &Situation<'_>) -> Classification {
        let (outcome, reason) = self.decide(situation);
        Classification {
            outcome,
            rule_set: self.label(),
            age: situation.age.map(|a| i32::try_from(a).unwrap_or(i32::MAX)),
            reason: reason.into(),
        }
    }

    fn decide(&self, s: &Situation<'_>) -> (ClassificationOutcome, &'static str) {
        use ClassificationOutcome::*;
        let t = &self.thresholds;
        if s.worst_form {
            return (
                WorstFormSuspected,
                "a worst form of child labour (C182 art. 3 a-c) is flagged",
            );
        }
        let hours = i64::from(s.hours_per_week);
        let listed: Vec<&str> = s
            .hazards
            .iter()
            .map(String::as_str)
            .filter(|h| self.has_hazard(h))
            .collect();
        // A child whose age is not established (a merge may have removed both the date of
        // birth and the estimate) is taken as below the minimum age, and so below the
        // hazardous work age: what is hazardous at any such age stays hazardous.
        let Some(age) = s.age else {
            if !listed.is_empty() {
                return (
                    HazardousChildLabour,
                    "age unknown: treated as below the minimum age until established, and a \
                     hazard on the hazardous work list was observed",
                );
            }
            if s.night_work && t.night_work_is_hazardous {
                return (
                    HazardousChildLabour,
                    "age unknown: treated as below the minimum age until established, and \
                     night work was observed",
                );
            }
            if hours > i64::from(t.long_hours) {
                return (
                    HazardousChildLabour,
                    "age unknown: treated as below the minimum age until established, and \
                     long hours were observed",
                );
            }
            // Nothing observed is work: not child labour at any age (as with an age known).
            if hours <= 0 && !s.night_work && !s.work_described {
                return (NotChildLabour, "not working");
            }
            return (
                ChildLabour,
                "age unknown: treated as below the minimum age until established",
            );
        };
        if age >= CHILD_BELOW_AGE.max(t.hazardous_work_age) {
            return (NotChildLabour, "at or above the hazardous work age");
        }
        // Night work, a hazard and work described are work, whatever hours were noted (0 when
        // not asked): an 8-year-old seen breaking cocoa pods, her hours unknown, works.
        let working = hours > 0 || s.night_work || !listed.is_empty() || s.work_described;
        // From the hazardous work age (16 exceptionally) to 18, the exception covers only what
        // `NEVER_FROM_16` leaves out; long hours and night work never.
        let excepted = age >= t.hazardous_work_age;
        if !excepted && !listed.is_empty() {
            return (
                HazardousChildLabour,
                "a hazard on the hazardous work list was observed",
            );
        }
        if listed.iter().any(|h| NEVER_FROM_16.contains(h)) {
            return (
                HazardousChildLabour,
                "a hazard the exception from 16 never covers (R190) was observed, below 18",
            );
        }
        if s.night_work && t.night_work_is_hazardous {
            return (
                HazardousChildLabour,
                if excepted {
                    "night work below 18: the exception from 16 never covers it"
                } else {
                    "night work below the hazardous work age"
                },
            );
        }
        if hours > i64::from(t.long_hours) {
            return (
                HazardousChildLabour,
                if excepted {
                    "long hours below 18: the exception from 16 never covers them"
                } else {
                    "long hours below the hazardous work age"
                },
            );
        }
        if excepted && !listed.is_empty() {
            return (
                NotChildLabour,
                "a listed hazard the exception from the hazardous work age (16) may cover",
            );
        }
        if !working {
            return (NotChildLabour, "not working");
        }
        if age < t.light_work_min_age {
            return (ChildLabour, "working below the light work age");
        }
        if age < t.minimum_age {
            if hours > i64::from(t.light_work_max_hours) {
                return (
                    ChildLabour,
                    "more hours than light work allows below the minimum age",
                );
            }
            // C138 art. 7: light work must not prejudice school attendance. A child below the
            // minimum age (so of compulsory-school age) who is out of school is not in light
            // work, which is allowed only outside school hours.
            if matches!(
                s.school,
                SchoolStatus::DroppedOut | SchoolStatus::NeverEnrolled
            ) {
                return (
                    ChildLabour,
                    "working out of school below the minimum age: light work is allowed only outside school hours",
                );
            }
            if hours <= 0 {
                return (
                    NotChildLabour,
                    "light work if its hours are within what light work allows: note them",
                );
            }
            return (NotChildLabour, "light work within the allowed hours");
        }
        (
            NotChildLabour,
            "at or above the minimum age, non-hazardous work",
        )
    }

    /// The follow-up dates after a remediation on `remediated_on`, in order: `follow_up_months`
    /// after it (always), then every 12 months after the last of those, strictly before the day
    /// the child reaches `follow_up_yearly_until_age` (`reaches_age_on`; none if unknown).
    pub fn follow_up_schedule(
        &self,
        remediated_on: NaiveDate,
        reaches_age_on: Option<NaiveDate>,
    ) -> impl Iterator<Item = NaiveDate> + '_ {
        let mut fixed: Vec<u32> = self.thresholds.follow_up_months.clone();
        fixed.sort_unstable();
        fixed.dedup();
        let last = fixed.last().copied().unwrap_or(0);
        let at = move |months: u32| remediated_on.checked_add_months(Months::new(months));
        let fixed_dates: Vec<NaiveDate> = fixed.into_iter().filter_map(at).collect();
        let yearly = (1u32..)
            .map_while(move |year| at(last.checked_add(year.checked_mul(12)?)?))
            .take_while(move |d| reaches_age_on.is_some_and(|limit| *d < limit));
        fixed_dates.into_iter().chain(yearly)
    }

    /// The first scheduled follow-up a follow-up made on `after` leaves due: the first after
    /// `after` by more than `EARLY_FOLLOW_UP_DAYS` (a visit made a few days before a planned
    /// one answers it: a monitor who saw the child in school on the 30th is not due again on
    /// the 1st, nor overdue on the 2nd).
    pub fn next_follow_up_after(
        &self,
        remediated_on: NaiveDate,
        reaches_age_on: Option<NaiveDate>,
        after: NaiveDate,
    ) -> Option<NaiveDate> {
        let answered_until = after + chrono::Days::new(EARLY_FOLLOW_UP_DAYS);
        self.follow_up_schedule(remediated_on, reaches_age_on)
            .find(|d| *d > answered_until)
    }
}

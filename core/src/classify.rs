//! Child labour classification by a versioned rule set (a country profile).
//!
//! The thresholds follow ILO C138 and C182; each country sets its own within them, so a rule set
//! is data, and a classification remembers which rule set and version produced it.

use crate::model::ChildCase;
use chrono::{Months, NaiveDate};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassificationOutcome {
    NotChildLabour,
    ChildLabour,
    HazardousChildLabour,
    WorstFormSuspected,
}

impl ClassificationOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotChildLabour => "not_child_labour",
            Self::ChildLabour => "child_labour",
            Self::HazardousChildLabour => "hazardous_child_labour",
            Self::WorstFormSuspected => "worst_form_suspected",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classification {
    pub outcome: ClassificationOutcome,
    /// `id@version` of the rule set that produced it.
    pub rule_set: String,
    /// The age the rules were applied to, if it could be established.
    pub age: Option<u32>,
    /// Which rule decided, for the person reviewing the case.
    pub reason: String,
}

/// An entry of the hazardous work list: a code and its labels.
pub type HazardItem = crate::reference::Item;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSet {
    pub id: String,
    pub version: u32,
    /// C138 minimum age for admission to employment (15, or 14 at first in a developing country).
    pub minimum_age: u32,
    /// Light work is allowed from this age (13, or 12 where the minimum age is 14).
    pub light_work_min_age: u32,
    /// Light work beyond this many hours a week is no longer light.
    pub light_work_max_hours: u32,
    /// Hazardous work is forbidden below this age (18).
    pub hazardous_work_age: u32,
    /// Hours a week above which work is hazardous for a child (long hours, R190).
    pub long_hours: u32,
    pub night_work_is_hazardous: bool,
    /// The national hazardous work list.
    pub hazardous_work: Vec<HazardItem>,
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

impl RuleSet {
    /// The profile that ships with the product, from the ILO conventions' own thresholds
    /// (`reference::CountryProfile::ilo_default` publishes the same as reference data).
    pub fn ilo_default() -> RuleSet {
        let hazard = HazardItem::new;
        RuleSet {
            id: "ilo-default".into(),
            version: 1,
            minimum_age: 15,
            light_work_min_age: 13,
            light_work_max_hours: 14,
            hazardous_work_age: 18,
            long_hours: 43,
            night_work_is_hazardous: true,
            hazardous_work: vec![
                hazard(
                    "abuse",
                    "Abus physique, psychologique ou sexuel",
                    "Physical, psychological or sexual abuse",
                ),
                hazard("underground", "Travail souterrain", "Work underground"),
                hazard("underwater", "Travail sous l'eau", "Work under water"),
                hazard(
                    "heights",
                    "Travail en hauteur dangereuse",
                    "Work at dangerous heights",
                ),
                hazard("confined_spaces", "Espaces confinés", "Confined spaces"),
                hazard(
                    "dangerous_machinery",
                    "Machines ou outils dangereux",
                    "Dangerous machinery, equipment or tools",
                ),
                hazard(
                    "sharp_tools",
                    "Outils tranchants (machettes)",
                    "Sharp tools (machetes)",
                ),
                hazard(
                    "heavy_loads",
                    "Port de charges lourdes",
                    "Carrying heavy loads",
                ),
                hazard(
                    "pesticides",
                    "Pesticides et produits chimiques",
                    "Pesticides and chemicals",
                ),
                hazard(
                    "mercury",
                    "Mercure et substances toxiques",
                    "Mercury and toxic substances",
                ),
                hazard(
                    "extreme_temperatures",
                    "Températures extrêmes",
                    "Extreme temperatures",
                ),
                hazard(
                    "noise_vibration",
                    "Bruit ou vibrations",
                    "Noise or vibration",
                ),
                hazard("burning", "Brûlage, feux, fours", "Burning, fires, kilns"),
                hazard(
                    "confinement",
                    "Confinement sur le lieu de travail",
                    "Unreasonable confinement to the premises",
                ),
            ],
            follow_up_months: default_follow_up_months(),
            follow_up_yearly_until_age: default_follow_up_yearly_until_age(),
        }
    }

    /// The follow-up dates after a remediation on `remediated_on`, in order: `follow_up_months`
    /// after it (always), then every 12 months after the last of those, strictly before the day
    /// the child reaches `follow_up_yearly_until_age` (`reaches_age_on`; none if unknown).
    pub fn follow_up_schedule(
        &self,
        remediated_on: NaiveDate,
        reaches_age_on: Option<NaiveDate>,
    ) -> impl Iterator<Item = NaiveDate> + '_ {
        let mut fixed: Vec<u32> = self.follow_up_months.clone();
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

    /// The first scheduled follow-up strictly after `after`.
    pub fn next_follow_up_after(
        &self,
        remediated_on: NaiveDate,
        reaches_age_on: Option<NaiveDate>,
        after: NaiveDate,
    ) -> Option<NaiveDate> {
        self.follow_up_schedule(remediated_on, reaches_age_on)
            .find(|d| *d > after)
    }

    /// The follow-up a case is due next: none before remediation; else the first scheduled
    /// date after the latest follow-up recorded since remediation (a follow-up made late still
    /// answers the visits due before it; one made early leaves the planned visit due).
    pub fn next_follow_up(&self, case: &ChildCase) -> Option<NaiveDate> {
        let start = case.remediated_on?;
        let last = case
            .followups
            .values()
            .map(|f| f.date)
            .filter(|d| *d >= start)
            .max()
            .unwrap_or(start);
        self.next_follow_up_after(
            start,
            case.reaches_age_on(self.follow_up_yearly_until_age),
            last,
        )
    }

    pub fn label(&self) -> String {
        format!("{}@{}", self.id, self.version)
    }

    pub fn has_hazard(&self, code: &str) -> bool {
        self.hazardous_work.iter().any(|h| h.code == code)
    }

    /// Classifies a child's situation on the day the child was identified.
    pub fn classify(&self, case: &ChildCase) -> Classification {
        let age = case.age_on(case.identified_on);
        let (outcome, reason) = self.decide(age, case);
        Classification {
            outcome,
            rule_set: self.label(),
            age,
            reason: reason.into(),
        }
    }

    fn decide(&self, age: Option<u32>, case: &ChildCase) -> (ClassificationOutcome, &'static str) {
        use ClassificationOutcome::*;
        if !case.worst_forms.is_empty() {
            return (
                WorstFormSuspected,
                "a worst form of child labour (C182 art. 3 a-c) is flagged",
            );
        }
        let Some(age) = age else {
            return (
                ChildLabour,
                "age unknown: treated as below the minimum age until established",
            );
        };
        if age >= self.hazardous_work_age {
            return (NotChildLabour, "at or above the hazardous work age");
        }
        let working = case.hours_per_week > 0;
        if case.hazards.iter().any(|h| self.has_hazard(h)) {
            return (
                HazardousChildLabour,
                "a hazard on the hazardous work list was observed",
            );
        }
        if working && case.night_work && self.night_work_is_hazardous {
            return (
                HazardousChildLabour,
                "night work below the hazardous work age",
            );
        }
        if case.hours_per_week > self.long_hours {
            return (
                HazardousChildLabour,
                "long hours below the hazardous work age",
            );
        }
        if !working {
            return (NotChildLabour, "not working");
        }
        if age < self.light_work_min_age {
            return (ChildLabour, "working below the light work age");
        }
        if age < self.minimum_age {
            if case.hours_per_week > self.light_work_max_hours {
                return (
                    ChildLabour,
                    "more hours than light work allows below the minimum age",
                );
            }
            return (NotChildLabour, "light work within the allowed hours");
        }
        (
            NotChildLabour,
            "at or above the minimum age, non-hazardous work",
        )
    }
}

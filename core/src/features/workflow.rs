//! The monitoring workflow (ILO CLMS: identification → referral → verification → tracking) as a
//! state machine over child cases, with the steps each role may take, and the supervisor's
//! review of visits.
//!
//! Case statuses move `identified → referred → receiving services → withdrawn | prevented →
//! closed`, and a child found working again is reopened: withdrawn, prevented or closed →
//! identified, to be referred again (`CaseStatus::can_become`). Who may take each step is the role matrix of `rights`,
//! which the hub applies to every pushed record too. The calls here act with the role the hub
//! gave the store's user at the last sync (`Store::acting_role`): the app does not say who it
//! is, and a store that never synced takes no workflow step.
//!
//! Verification, closing and reopening are a supervisor's: they end the services and start the
//! tracking, end it, or start the cycle again. A case is withdrawn or prevented only with its
//! verification date, and closed only once a follow-up after it found the child not working
//! (`rights::check_case_facts`, which the hub applies to pushes and its console too).
//! A verification sets `remediated_on`, from which the rule set's follow-up schedule (3 and 6
//! months, then yearly until 18 by default; never on or after the 18th birthday) plans the
//! case's next follow-up: it is derived on every write, so it appears in `follow_ups_due` at
//! once and moves on with each follow-up.

use crate::domain::codes::{CaseStatus, Role, VisitStatus};
use crate::domain::records::{ChildCase, FollowUp, Referral, Visit};
use crate::domain::reference::ReferenceData;
use crate::domain::rights::{self, Step, check_case_transition};
use crate::error::{Error, Result, ValidationError};
use crate::store::Store;
use chrono::{Datelike, NaiveDate};
use uuid::Uuid;

/// A supervisor's decision on a submitted visit (apps: `VisitReview`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum), uniffi(name = "VisitReview"))]
pub enum Review {
    Validate,
    /// Back to the visitor for correction, with what to correct (required).
    #[cfg_attr(feature = "uniffi", uniffi(name = "ReturnToVisitor"))]
    Return {
        comment: String,
    },
}

fn not_allowed(rule: impl Into<String>) -> Error {
    Error::NotAllowed { rule: rule.into() }
}

fn not_merged(case: &ChildCase) -> Result<()> {
    if case.is_merged_duplicate() {
        return Err(not_allowed(rights::MERGED_AWAY));
    }
    Ok(())
}

impl Store {
    /// Moves a case to `to`, today on this device (see `transition_case_on`): the day it is in
    /// the phone's zone, by which the phone and the hub judge its user's dates (a supervisor
    /// west of UTC verifying a child in the evening was refused "after today" by the UTC day).
    pub fn transition_case(&mut self, id: Uuid, to: CaseStatus) -> Result<ChildCase> {
        self.transition_case_on(id, to, chrono::Local::now().date_naive())
    }

    /// Moves a case to `to` on `on`, as the store's user: the state machine and the user's
    /// role are checked (`Error::NotAllowed` otherwise). Becoming withdrawn or prevented
    /// records `on` as the remediation date and schedules the first follow-up.
    pub fn transition_case_on(
        &mut self,
        id: Uuid,
        to: CaseStatus,
        on: NaiveDate,
    ) -> Result<ChildCase> {
        let role = self.acting_role()?;
        let mut case: ChildCase = self.get(id)?;
        transition(&mut case, to, role, on)?;
        self.update(&case)
    }

    /// Records a referral to a service. An identified case becomes referred; a case already
    /// referred or receiving services keeps its status (a further referral). Returns the case
    /// and the new referral's key.
    pub fn refer_case(&mut self, id: Uuid, referral: Referral) -> Result<(ChildCase, Uuid)> {
        let role = self.acting_role()?;
        rights::check_step(role, self.user_id(), &Step::ReferralAdded)?;
        let mut case: ChildCase = self.get(id)?;
        case.check_referral_in_force(&referral.provider, &self.reference())?;
        let key = Uuid::now_v7();
        refer(&mut case, key, referral)?;
        let stored = self
            .update(&case)
            .map_err(|e| as_input(e, &format!("referrals.{key}."), "referral."))?;
        Ok((stored, key))
    }

    /// Records a follow-up of a case. Once the case is verified (and until it is reopened), the
    /// follow-up's `next_due` is the schedule's next date after it, or the caller's if sooner (a
    /// later one is refused naming `follow_up.next_due`: the schedule is the longest a
    /// child waits); before, the caller's `next_due` is kept. Returns the case and the
    /// follow-up's key.
    pub fn add_follow_up(&mut self, id: Uuid, follow_up: FollowUp) -> Result<(ChildCase, Uuid)> {
        let role = self.acting_role()?;
        rights::check_step(role, self.user_id(), &Step::FollowUpAdded)?;
        let mut case: ChildCase = self.get(id)?;
        let key = Uuid::now_v7();
        follow(&mut case, key, follow_up, &self.reference())?;
        let stored = self
            .update(&case)
            .map_err(|e| as_input(e, &format!("followups.{key}."), "follow_up."))?;
        Ok((stored, key))
    }

    /// The visitor submits a draft (or a returned) visit for review.
    pub fn submit_visit(&mut self, id: Uuid) -> Result<Visit> {
        let mut visit: Visit = self.get(id)?;
        let to = VisitStatus::Submitted;
        if visit.status == to || !visit.status.can_become(to) {
            return Err(not_allowed(format!(
                "only a draft or returned visit can be submitted (this one is {})",
                visit.status.as_str()
            )));
        }
        visit.status = to;
        self.update(&visit)
    }

    /// A supervisor validates a submitted visit, or returns it to its visitor with a comment
    /// (required). `reviewed_by` is the store's user.
    pub fn review_visit(&mut self, id: Uuid, review: Review) -> Result<Visit> {
        let role = self.acting_role()?;
        let user = self.user_id();
        rights::check_step(
            role,
            user,
            &Step::Review {
                reviewer: Some(user),
            },
        )?;
        let mut visit: Visit = self.get(id)?;
        apply_review(&mut visit, review, user)?;
        self.update(&visit)
    }
}

// The steps as changes of the record itself: the device's `Store` methods above and the hub's
// console (through `sync::change_as`, where the role matrix judges the change as it judges a
// push) take them the same way.

/// A case moved to `to` on `on` by a user of role `by` (`Store::transition_case_on`). A
/// verification records `on` as `remediated_on`; closing needs a follow-up after it that found
/// the child not working (`rights::check_case_facts`); reopening keeps the earlier verification
/// date and follow-ups as history, and the next verification records its own date.
pub fn transition(case: &mut ChildCase, to: CaseStatus, by: Role, on: NaiveDate) -> Result<()> {
    not_merged(case)?;
    let from = case.status;
    check_case_transition(from, to, by)?;
    let mut after = case.clone();
    after.status = to;
    if matches!(to, CaseStatus::Withdrawn | CaseStatus::Prevented) {
        after.remediated_on = Some(on);
    }
    rights::check_step(by, Uuid::nil(), &Step::case_status(from, &after))?;
    *case = after;
    Ok(())
}

/// A referral recorded on a case (`Store::refer_case`) under `key`: a new one at every call
/// from an app, the one a console form was rendered with (a form sent twice records one).
pub fn refer(case: &mut ChildCase, key: Uuid, referral: Referral) -> Result<()> {
    not_merged(case)?;
    if case.referrals.contains_key(&key) {
        return Err(not_allowed("a referral is recorded under that key already"));
    }
    match case.status {
        CaseStatus::Identified => case.status = CaseStatus::Referred,
        CaseStatus::Referred | CaseStatus::ReceivingServices => {}
        other => {
            return Err(not_allowed(format!(
                "a {} case cannot be referred",
                other.as_str()
            )));
        }
    }
    case.referrals.insert(key, referral);
    Ok(())
}

/// A workflow call's refusal naming the field of its input as the app's form names it
/// (`referral.date`, `follow_up.next_due`), not by the key the case would have stored it
/// under: a new key at every call, which the app never saw.
fn as_input(e: Error, stored_as: &str, input: &str) -> Error {
    match e {
        Error::Validation(mut v) if v.field.starts_with(stored_as) => {
            v.field = format!("{input}{}", &v.field[stored_as.len()..]);
            Error::Validation(v)
        }
        e => e,
    }
}

/// A follow-up recorded on a case (`Store::add_follow_up`): while the case is tracked after its
/// verification (`ChildCase::is_tracked`), its `next_due` is the date the next one is due
/// (`RuleSet::next_follow_up`, by the profile the case was captured with, in `reference`): the
/// schedule's, or the caller's if sooner; one after the schedule's is refused. Recorded under `key`,
/// as `refer` is.
pub fn follow(
    case: &mut ChildCase,
    key: Uuid,
    mut follow_up: FollowUp,
    reference: &ReferenceData,
) -> Result<()> {
    not_merged(case)?;
    if case.followups.contains_key(&key) {
        return Err(not_allowed(
            "a follow-up is recorded under that key already",
        ));
    }
    let asked = follow_up.next_due;
    // No follow-up is due once the child is of age: a date planned on or after that day was
    // dropped with nothing said (a supervisor's form reported it recorded). Said of the call's
    // input, as the write would say it of the key it is stored under.
    if asked.is_some() {
        use crate::domain::records::Subject;
        let mut planned = case.clone();
        planned.followups.insert(key, follow_up.clone());
        crate::domain::records::plans_within_childhood(
            Some(Subject::ChildCase(case)),
            Subject::ChildCase(&planned),
            reference,
        )
        .map_err(|e| as_input(e.into(), &format!("followups.{key}."), "follow_up."))?;
    }
    case.followups.insert(key, follow_up.clone());
    if case.is_tracked() {
        let rules = reference.rule_set_of(case)?;
        let due = rules.next_follow_up(case);
        if let (Some(asked), Some(due)) = (asked, due)
            && asked > due
        {
            case.followups.remove(&key);
            return Err(ValidationError::new(
                "follow_up.next_due",
                format!(
                    "must not be after the next follow-up due, on {}-{:02}-{:02}",
                    due.year(),
                    due.month(),
                    due.day()
                ),
            )
            .into());
        }
        follow_up.next_due = due;
        case.followups.insert(key, follow_up);
    }
    Ok(())
}

/// A review of a submitted visit by `reviewer` (`Store::review_visit`): validated or returned;
/// a validated visit found wrong may be returned too, for its visitor to correct. The role is
/// the caller's to check.
pub fn apply_review(visit: &mut Visit, review: Review, reviewer: Uuid) -> Result<()> {
    let to = match review {
        Review::Validate => VisitStatus::Validated,
        Review::Return { .. } => VisitStatus::Returned,
    };
    if visit.status == to || !visit.status.can_become(to) {
        return Err(not_allowed(format!(
            "only a submitted visit can be validated, and a submitted or validated one returned (this one is {})",
            visit.status.as_str()
        )));
    }
    match review {
        // A comment of an earlier return was answered by the visit validated now: it would
        // read as what the validator wrote.
        Review::Validate => {
            visit.status = VisitStatus::Validated;
            visit.review_comment.clear();
        }
        Review::Return { comment } => {
            if crate::domain::validation::looks_empty(&comment) {
                return Err(ValidationError::new(
                    "review_comment",
                    "a returned visit needs a comment",
                )
                .into());
            }
            visit.status = VisitStatus::Returned;
            visit.review_comment = comment;
        }
    }
    visit.reviewed_by = Some(reviewer);
    Ok(())
}

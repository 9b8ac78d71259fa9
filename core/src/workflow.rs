//! The monitoring workflow (ILO CLMS: identification → referral → verification → tracking) as a
//! state machine over child cases, with the steps each role may take, and the supervisor's
//! review of visits.
//!
//! Case statuses move `identified → referred → receiving services → withdrawn | prevented →
//! closed` (`CaseStatus::can_become`). Who may take each step:
//!
//! | step | community monitor | supervisor | inspector |
//! |---|---|---|---|
//! | refer (`refer_case`: identified → referred, or a further referral) | yes | yes | no |
//! | referred → receiving services | yes | yes | no |
//! | verify: receiving services → withdrawn or prevented | no | yes | no |
//! | close: withdrawn or prevented → closed | no | yes | no |
//! | record a follow-up | yes | yes | no |
//! | validate or return a submitted visit | no | yes | no |
//!
//! Inspectors work with workplaces and visits (the hub does not even send them child cases).
//! Verification and closing are a supervisor's: they end the services and start the tracking.
//! A verification sets `remediated_on`, from which the rule set's follow-up schedule (3 and 6
//! months, then yearly until 18 by default) plans the case's next follow-up: it is derived on
//! every write, so it appears in `follow_ups_due` at once and moves on with each follow-up.

use crate::error::{Error, Result, ValidationError};
use crate::model::{CaseStatus, ChildCase, FollowUp, Referral, Role, Visit, VisitStatus};
use crate::store::Store;
use chrono::{NaiveDate, Utc};
use uuid::Uuid;

/// A supervisor's decision on a submitted visit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Review {
    Validate,
    /// Back to the visitor for correction, with what to correct (required).
    Return {
        comment: String,
    },
}

fn not_allowed(rule: impl Into<String>) -> Error {
    Error::NotAllowed { rule: rule.into() }
}

fn role_str(role: Role) -> &'static str {
    match role {
        Role::Inspector => "inspector",
        Role::CommunityMonitor => "community monitor",
        Role::Supervisor => "supervisor",
        Role::Administrator => "administrator",
    }
}

fn manages_cases(by: Role) -> Result<()> {
    if by == Role::Inspector {
        return Err(not_allowed("an inspector does not manage child cases"));
    }
    Ok(())
}

fn not_merged(case: &ChildCase) -> Result<()> {
    if case.merged_into.is_some() {
        return Err(not_allowed(
            "the case was merged into another case: work on that case",
        ));
    }
    Ok(())
}

/// Whether `by` may move a case from `from` to `to` with `transition_case`; the error names the
/// rule that forbids it.
pub fn check_case_transition(from: CaseStatus, to: CaseStatus, by: Role) -> Result<()> {
    use CaseStatus::*;
    manages_cases(by)?;
    if from == to {
        return Err(not_allowed(format!("the case is already {}", to.as_str())));
    }
    if !from.can_become(to) {
        return Err(not_allowed(format!(
            "a case cannot go from {} to {}",
            from.as_str(),
            to.as_str()
        )));
    }
    match to {
        Referred => Err(not_allowed(
            "a case is referred with refer_case, which records the referral",
        )),
        Withdrawn | Prevented | Closed if by != Role::Supervisor => Err(not_allowed(format!(
            "only a supervisor may make a case {} (a {} may not)",
            to.as_str(),
            role_str(by)
        ))),
        _ => Ok(()),
    }
}

impl Store {
    /// Moves a case to `to`, as `by`, today (see `transition_case_on`).
    pub fn transition_case(&mut self, id: Uuid, to: CaseStatus, by: Role) -> Result<ChildCase> {
        self.transition_case_on(id, to, by, Utc::now().date_naive())
    }

    /// Moves a case to `to`, as `by`, on `on`: the state machine and the role's rights are
    /// checked (`Error::NotAllowed` otherwise). Becoming withdrawn or prevented records `on` as
    /// the remediation date and schedules the first follow-up.
    pub fn transition_case_on(
        &mut self,
        id: Uuid,
        to: CaseStatus,
        by: Role,
        on: NaiveDate,
    ) -> Result<ChildCase> {
        let mut case: ChildCase = self.get(id)?;
        transition(&mut case, to, by, on)?;
        self.update(&case)
    }

    /// Records a referral to a service. An identified case becomes referred; a case already
    /// referred or receiving services keeps its status (a further referral). Returns the case
    /// and the new referral's key.
    pub fn refer_case(
        &mut self,
        id: Uuid,
        referral: Referral,
        by: Role,
    ) -> Result<(ChildCase, Uuid)> {
        let mut case: ChildCase = self.get(id)?;
        let key = refer(&mut case, referral, by)?;
        Ok((self.update(&case)?, key))
    }

    /// Records a follow-up of a case. Once the case is remediated, the follow-up's `next_due` is
    /// the schedule's next date after it (whatever the caller put there); before, the caller's
    /// `next_due` is kept. Returns the case and the follow-up's key.
    pub fn add_follow_up(
        &mut self,
        id: Uuid,
        follow_up: FollowUp,
        by: Role,
    ) -> Result<(ChildCase, Uuid)> {
        let mut case: ChildCase = self.get(id)?;
        let key = follow(&mut case, follow_up, by, &self.reference())?;
        Ok((self.update(&case)?, key))
    }

    /// A supervisor validates a submitted visit, or returns it to its visitor with a comment
    /// (required). `reviewed_by` is the store's user.
    pub fn review_visit(&mut self, id: Uuid, review: Review, by: Role) -> Result<Visit> {
        if by != Role::Supervisor {
            return Err(not_allowed(format!(
                "only a supervisor may review a visit (a {} may not)",
                role_str(by)
            )));
        }
        let mut visit: Visit = self.get(id)?;
        apply_review(&mut visit, review, self.user_id())?;
        self.update(&visit)
    }
}

/// A case moved to `to` by `by` on `on` (`Store::transition_case_on`), on the record itself:
/// the hub's console takes the same step on the hub's copy.
pub fn transition(case: &mut ChildCase, to: CaseStatus, by: Role, on: NaiveDate) -> Result<()> {
    not_merged(case)?;
    check_case_transition(case.status, to, by)?;
    case.status = to;
    if matches!(to, CaseStatus::Withdrawn | CaseStatus::Prevented) {
        case.remediated_on = Some(on);
    }
    Ok(())
}

/// A referral recorded on a case by `by` (`Store::refer_case`); returns its key.
pub fn refer(case: &mut ChildCase, referral: Referral, by: Role) -> Result<Uuid> {
    manages_cases(by)?;
    not_merged(case)?;
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
    let key = Uuid::now_v7();
    case.referrals.insert(key, referral);
    Ok(key)
}

/// A supervisor's review of a submitted visit (`Store::review_visit`), by `reviewer`; the
/// caller checks the role.
pub fn apply_review(visit: &mut Visit, review: Review, reviewer: Uuid) -> Result<()> {
    if visit.status != VisitStatus::Submitted {
        return Err(not_allowed(format!(
            "only a submitted visit can be reviewed (this one is {})",
            visit.status.as_str()
        )));
    }
    match review {
        Review::Validate => visit.status = VisitStatus::Validated,
        Review::Return { comment } => {
            if comment.trim().is_empty() {
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

/// A follow-up recorded on a case by `by` (`Store::add_follow_up`), its next date from the
/// schedule of the profile the case was captured with (in `reference`); returns its key.
pub fn follow(
    case: &mut ChildCase,
    mut follow_up: FollowUp,
    by: Role,
    reference: &crate::reference::ReferenceData,
) -> Result<Uuid> {
    manages_cases(by)?;
    not_merged(case)?;
    let key = Uuid::now_v7();
    case.followups.insert(key, follow_up.clone());
    if case.remediated_on.is_some() {
        follow_up.next_due = reference.rule_set_of(case)?.next_follow_up(case);
        case.followups.insert(key, follow_up);
    }
    Ok(key)
}

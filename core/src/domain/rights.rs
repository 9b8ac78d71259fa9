//! Who may do what: the one home of the role matrix. A device checks its own user's writes
//! and workflow calls against it (with the role the hub told it), and the hub checks every
//! pushed record against it (with the sender's role): both derive the steps a write takes from
//! the record before and after it (`steps`) and ask `check_step` about each.
//!
//! | kind | step | community monitor | inspector | supervisor |
//! |---|---|---|---|---|
//! | workplace | create, change (in their areas) | yes | yes | yes |
//! | visit | create (draft or submitted), change | yes | yes | yes |
//! | visit | draft → submitted, returned → submitted | yes | yes | yes |
//! | visit | submitted → validated or returned; set `reviewed_by` (to themselves) | no | no | yes |
//! | child case | create (identified, or referred with a referral) | yes | yes | yes |
//! | child case | change its facts (age, hours, hazards, school, notes…) | yes | yes | yes |
//! | child case | add a referral or change one; identified → referred (with a referral) | yes | yes | yes |
//! | child case | referred → receiving services | yes | no | yes |
//! | child case | record a follow-up, or change one recorded | yes | no | yes |
//! | child case | verify: receiving services → withdrawn or prevented, `remediated_on` | no | no | yes |
//! | child case | close: withdrawn or prevented → closed | no | no | yes |
//! | child case | reopen: withdrawn, prevented or closed → identified | no | no | yes |
//! | child case | remove a referral or a follow-up; merge duplicates (`merged_into`, `merged_from`) | no | no | yes |
//! | child case | remove the last referral of a case past identified | no | no | no |
//! | any record | take off a file, or change its caption: one's own, and a visit's visitor any of the visit's (never while it is submitted or validated) | yes | yes | yes |
//! | workplace, child case | take off any of its files, or change its caption | no | no | yes |
//! | user, reference data | any change | no | no | no (the hub's administrator only) |
//!
//! Every role receives workplaces, visits and child cases of its areas: monitors register the
//! farms and households they visit, and inspectors open the case of a child they find (and must
//! see the cases already open, not to register the same child twice). What differs between roles
//! is the steps of the monitoring cycle: verification, closing, reopening, review and merging
//! are a supervisor's. An administrator (the hub's console: users, devices, reference data)
//! receives and changes no field record: no kind, no step.
//!
//! What a case's record must say for its status, whoever takes the step (`check_case_facts`):
//! a case becomes withdrawn or prevented only with its verification date (`remediated_on`), and
//! not while the latest follow-up after that date finds the child still working; it becomes closed only
//! once verified and when its latest follow-up after the verification saw the child not working.
//! A child found working again is reopened (back to identified, to be referred again): the
//! monitor records the follow-up that finds it, the supervisor who verified and closes cases
//! reopens them.

use crate::domain::area::Area;
use crate::domain::attachment::Attachment;
use crate::domain::codes::{
    CaseStatus, FollowUpSituation, RecordKind, Role, VisitAction, VisitKind, VisitStatus,
};
use crate::domain::records::{ChildCase, Record, Subject, User, Visit};
use crate::domain::reference::{AreaGrant, ReferenceData};
use crate::domain::validation::{NotAllowed, ValidationError, WriteRefused};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use uuid::Uuid;

/// Whether a user of this role works on a phone: one whose role gives no records (an
/// administrator, who works in the console) is enrolled no device, which would receive nothing.
pub fn works_on_a_device(role: Role) -> bool {
    !kinds(role).is_empty()
}

/// The kinds a role receives, creates and changes (in its areas). Never users or reference data:
/// those are the hub's.
pub fn kinds(role: Role) -> &'static [RecordKind] {
    match role {
        Role::CommunityMonitor | Role::Inspector | Role::Supervisor => &[
            RecordKind::Workplace,
            RecordKind::Visit,
            RecordKind::ChildCase,
        ],
        Role::Administrator => &[],
    }
}

/// One step a write takes, found by comparing the record before and after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Create(RecordKind),
    /// Any change of a record's fields that is not one of the steps below.
    Edit(RecordKind),
    CaseStatus {
        from: CaseStatus,
        to: CaseStatus,
        /// Whether the case holds a referral once the write is made.
        has_referral: bool,
        /// What the case says of its verification and the follow-ups after it once the write is
        /// made.
        tracking: Tracking,
    },
    /// A referral recorded, or one already recorded changed: changing a referral is recording
    /// it anew, so it is the same step.
    ReferralAdded,
    ReferralRemoved,
    /// A follow-up recorded, or one already recorded changed (its date, situation, notes or next
    /// due date): rewriting what a visit observed is recording it anew, so it is the same step.
    FollowUpAdded,
    FollowUpRemoved,
    /// `remediated_on` set, changed or removed: the verification's date. `unverifies` names the
    /// status of a case the write leaves verified-only (withdrawn, prevented, closed) without
    /// its date, which no one may do: the status step checks the facts on the way in, this on
    /// the way out.
    Remediated {
        unverifies: Option<CaseStatus>,
        /// The status a verified case keeps, with the tracking the new date gives it, when
        /// the date itself breaks what that status needs (`check_case_facts`): a closed case
        /// re-dated after its only follow-up, which closing would have been refused on.
        refacts: Option<(CaseStatus, Tracking)>,
    },
    /// A write that leaves the case verified (`remediated_on`) before the day of its first
    /// referral, which it was not before: a child is verified withdrawn or prevented after
    /// being referred to the services that did it, so one of the two dates was typed wrong.
    /// No one may take it (a record already so, from before the rule, is not held to it by
    /// edits elsewhere).
    VerifiedBeforeReferral,
    /// A reviewed visit (validated or returned) left without its reviewer: a validation that
    /// names no one vouches for nothing.
    ReviewerCleared,
    /// The last referral of a case past `identified` removed: the case would stand referred,
    /// receiving services or verified with no referral to say so (and a hub that never held it
    /// would find it never referred). No one may take it: the right referral is recorded first.
    LastReferralRemoved {
        status: CaseStatus,
    },
    /// `merged_into` or `merged_from` changed.
    Merge,
    /// A write that changes what a merged duplicate holds (`ChildCase::is_merged_duplicate`),
    /// made by someone who saw it merged: what it records would reach no list, alert or
    /// count (the case kept stands for the child), and a merge is not undone by an edit. No
    /// one may take it; its filing and whose lists it is on may still change. A write made on
    /// the duplicate before its maker saw the merge is judged as before, and brought over to
    /// the case kept (`ChildCase::bring_over`).
    MergedDuplicateEdited,
    VisitStatus {
        from: VisitStatus,
        to: VisitStatus,
    },
    /// `reviewed_by` or the review's comment set or changed, by this user.
    Review {
        reviewer: Option<Uuid>,
    },
    /// What a visit records (everything but its status and review) changed, on a visit that
    /// was `from` before the write, whose visitor is `visitor`.
    VisitContent {
        from: VisitStatus,
        to: VisitStatus,
        visitor: Uuid,
    },
    /// A draft or returned visit submitted (on its way, maybe, to a review in the same write):
    /// its visitor's word that this is their account, which no one gives for them.
    VisitSubmitted {
        visitor: Uuid,
    },
    /// A visit made a labour inspection (`field`: `kind`), or a warning or an order added to
    /// what it did (`actions`): powers of a labour inspector's (ILO C81 arts. 12-13), which a
    /// ministry counts as its inspections.
    Inspection {
        field: &'static str,
    },
    /// Users and reference data, which only the hub's administrator changes.
    Administration(RecordKind),
}

fn not_allowed(rule: impl Into<String>) -> NotAllowed {
    NotAllowed::new(rule)
}

/// What a case's record says of its verification and of the follow-ups after it: the facts
/// that decide whether it may be withdrawn, prevented or closed (`check_case_facts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracking {
    /// No verification date (`remediated_on`).
    Unverified,
    /// Verified, and no follow-up dated after the verification day.
    Verified,
    /// Verified on a day whose latest follow-up (the verification's own visit) found the
    /// child still working, whatever was seen since.
    WorkingOnTheDay,
    /// Verified, and the latest follow-up dated after the verification day observed this
    /// (`records::latest_follow_up`: of several on that day, the most worrying).
    FollowedUp(FollowUpSituation),
}

impl Tracking {
    /// A case's tracking as its record stands. A follow-up on the day of the verification is
    /// not one after it: it is the verification's own visit, as the schedule counts it.
    pub fn of(case: &ChildCase) -> Tracking {
        let Some(verified) = case.remediated_on else {
            return Tracking::Unverified;
        };
        // A verification dated on a day a visit found the child working stands for nothing,
        // whatever was seen since (a supervisor typing the verification after the next visit).
        let that_day = case.followups.values().filter(|f| f.date == verified);
        if crate::domain::records::latest_follow_up(that_day)
            .is_some_and(|f| f.situation == FollowUpSituation::StillWorking)
        {
            return Tracking::WorkingOnTheDay;
        }
        let after = case.followups.values().filter(|f| f.date > verified);
        match crate::domain::records::latest_follow_up(after) {
            Some(latest) => Tracking::FollowedUp(latest.situation),
            None => Tracking::Verified,
        }
    }
}

/// Whether a case whose record says `tracking` may be `to` (checked when a write moves it
/// there, by any role and on every path: the device's writes and workflow calls, the hub's
/// pushes and console). The error names the rule.
///
/// DOMAIN.md: "visits at 3 and 6 months after remediation; the case is closed if the child is
/// not working at those visits, then checked yearly until the child turns 18." Closing is
/// decided by what a visit after the verification saw, so at least one follow-up dated after
/// the verification day is required, and the latest must have seen the child not working
/// (withdrawn, in school, or at risk but not working): a child still working, or not found
/// (nobody saw whether the child works), keeps the case open. The role matrix does not count
/// the visits against the country's schedule: the supervisor judges whether the visits made
/// are enough, the rule only forbids closing on none, or against what the latest one saw.
pub fn check_case_facts(to: CaseStatus, tracking: Tracking) -> Result<(), NotAllowed> {
    use FollowUpSituation::{NotFound, StillWorking};
    match (to, tracking) {
        (CaseStatus::Withdrawn | CaseStatus::Prevented, Tracking::Unverified) => {
            Err(not_allowed(format!(
                "a case becomes {} only with its verification date (remediated_on): verify it with \
                 transition_case",
                to.as_str()
            )))
        }
        (CaseStatus::Withdrawn | CaseStatus::Prevented, Tracking::FollowedUp(StillWorking)) => {
            Err(not_allowed(format!(
                "a case cannot become {} while a follow-up after its verification date finds the \
                 child still working",
                to.as_str()
            )))
        }
        (
            CaseStatus::Withdrawn | CaseStatus::Prevented | CaseStatus::Closed,
            Tracking::WorkingOnTheDay,
        ) => Err(not_allowed(format!(
            "a case cannot become {} on its verification date (remediated_on) when a \
                 follow-up that day finds the child still working: date the verification from \
                 the day the child was seen not working",
            to.as_str()
        ))),
        (CaseStatus::Closed, Tracking::Unverified) => Err(not_allowed(
            "a case is closed only once verified withdrawn or prevented (remediated_on)",
        )),
        (CaseStatus::Closed, Tracking::Verified) => Err(not_allowed(
            "a case is closed only after a follow-up after its verification finds the child not \
             working",
        )),
        (CaseStatus::Closed, Tracking::FollowedUp(StillWorking | NotFound)) => Err(not_allowed(
            "a case is closed only when its latest follow-up after the verification finds the \
             child not working",
        )),
        _ => Ok(()),
    }
}

/// Why a case is not verified or closed while a follow-up holds values side by side
/// (`check_case_facts_in_conflict`).
pub const FACTS_IN_CONFLICT: &str = "a case is not verified withdrawn or prevented, nor closed, \
     while a follow-up holds values side by side one of which would refuse it: choose one in \
     its conflict first";

/// `check_case_facts` for the status a case holds, under every reading of its follow-ups in
/// conflict (`ChildCase::followup_readings`): one monitor found the child in school and
/// another still working at the same follow-up, and the merge showed the first; the case is
/// not closed on that pick, someone chooses first.
pub fn check_case_facts_in_conflict(
    case: &ChildCase,
    concurrent: &[crate::domain::records::Concurrent],
) -> Result<(), NotAllowed> {
    let mut reading = case.clone();
    for followups in case.followup_readings(concurrent) {
        reading.followups = followups;
        if check_case_facts(case.status, Tracking::of(&reading)).is_err() {
            return Err(not_allowed(FACTS_IN_CONFLICT));
        }
    }
    Ok(())
}

/// The case status changes each role may make, one at a time.
fn case_edges(role: Role) -> &'static [(CaseStatus, CaseStatus)] {
    use CaseStatus::*;
    match role {
        Role::Inspector => &[(Identified, Referred)],
        Role::CommunityMonitor => &[(Identified, Referred), (Referred, ReceivingServices)],
        Role::Supervisor => &[
            (Identified, Referred),
            (Referred, ReceivingServices),
            (ReceivingServices, Withdrawn),
            (ReceivingServices, Prevented),
            (Withdrawn, Closed),
            (Prevented, Closed),
            (Withdrawn, Identified),
            (Prevented, Identified),
            (Closed, Identified),
        ],
        Role::Administrator => &[],
    }
}

fn visit_edges(role: Role) -> &'static [(VisitStatus, VisitStatus)] {
    use VisitStatus::*;
    match role {
        Role::Supervisor => &[
            (Draft, Submitted),
            (Returned, Submitted),
            (Submitted, Validated),
            (Submitted, Returned),
            // A validated visit found wrong goes back to its visitor for a correction.
            (Validated, Returned),
        ],
        Role::CommunityMonitor | Role::Inspector => &[(Draft, Submitted), (Returned, Submitted)],
        Role::Administrator => &[],
    }
}

/// Whether `to` can be reached from `from` by steps in `edges` (a write made offline may hold
/// several steps: a case opened and referred, a visit submitted and validated).
fn reachable<T: Copy + PartialEq>(edges: &[(T, T)], from: T, to: T) -> bool {
    let mut seen = vec![from];
    let mut i = 0;
    while i < seen.len() {
        let at = seen[i];
        if at == to {
            return true;
        }
        for (a, b) in edges {
            if *a == at && !seen.contains(b) {
                seen.push(*b);
            }
        }
        i += 1;
    }
    false
}

/// Whether a case status step reopens the case (withdrawn, prevented or closed → identified).
fn reopens(from: CaseStatus, to: CaseStatus) -> bool {
    to == CaseStatus::Identified && from != to
}

/// The stage a write's forward steps start from: `from`, or identified when the write reopens
/// the case (a case reopened and referred again offline holds both steps). The reopening may
/// follow forward steps of the same write: a supervisor offline verifies a child withdrawn,
/// then finds the child working again; each step was allowed on the tablet, and the hub sees
/// them as one write. Reopening stays a step only a role allowed to reopen takes.
fn case_start(role: Role, from: CaseStatus, to: CaseStatus) -> Option<CaseStatus> {
    let forward = forward_case_edges(role);
    if reachable(&forward, from, to) {
        return Some(from);
    }
    let reopened = case_edges(role)
        .iter()
        .any(|(a, b)| reopens(*a, *b) && reachable(&forward, from, *a));
    (reopened && reachable(&forward, CaseStatus::Identified, to)).then_some(CaseStatus::Identified)
}

/// Whether a write takes a case from `from` forward to withdrawn, prevented or closed, then
/// reopens it (`case_start`): the verification on the way leaves its date on the record.
fn verifies_then_reopens(role: Role, from: CaseStatus, to: CaseStatus) -> bool {
    case_start(role, from, to) == Some(CaseStatus::Identified)
        && !reachable(&forward_case_edges(role), from, to)
        && !case_edges(role).contains(&(from, CaseStatus::Identified))
}

/// The case status changes `role` may make that do not reopen the case.
fn forward_case_edges(role: Role) -> Vec<(CaseStatus, CaseStatus)> {
    case_edges(role)
        .iter()
        .copied()
        .filter(|(a, b)| !reopens(*a, *b))
        .collect()
}

/// Whether a case status change is made by a supervisor's step only (the rule names it).
fn case_status_rule(role: Role, from: CaseStatus, to: CaseStatus) -> NotAllowed {
    let Some(start) = case_start(Role::Supervisor, from, to) else {
        return not_allowed(format!(
            "a case cannot go from {} to {}",
            from.as_str(),
            to.as_str()
        ));
    };
    if start != from && case_start(role, from, CaseStatus::Identified).is_none() {
        if to == CaseStatus::Identified {
            return not_allowed(format!(
                "only a supervisor may reopen a case ({} may not)",
                role.in_words()
            ));
        }
        // A status another device's value leads to (a conflict between withdrawn and
        // prevented settled by a monitor): the way there is no reopening the user asked for.
        return not_allowed(format!(
            "only a supervisor may make a {} case {}: the way there reopens it, a supervisor's step ({} may not)",
            from.as_str(),
            to.as_str(),
            role.in_words()
        ));
    }
    let forward = |r: Role, a: CaseStatus, b: CaseStatus| case_start(r, a, b) == Some(a);
    let first_forbidden = [
        CaseStatus::Referred,
        CaseStatus::ReceivingServices,
        CaseStatus::Withdrawn,
        CaseStatus::Prevented,
        CaseStatus::Closed,
    ]
    .into_iter()
    .find(|s| {
        forward(Role::Supervisor, start, *s)
            && forward(Role::Supervisor, *s, to)
            && !forward(role, start, *s)
    })
    .unwrap_or(to);
    if role == Role::Inspector && first_forbidden == CaseStatus::ReceivingServices {
        return not_allowed(
            "an inspector opens and refers child cases; their services are followed by monitors and supervisors",
        );
    }
    if first_forbidden != to {
        return not_allowed(format!(
            "only a supervisor may make a case {}: the way there goes through {}, a supervisor's step ({} may not)",
            to.as_str(),
            first_forbidden.as_str(),
            role.in_words()
        ));
    }
    not_allowed(format!(
        "only a supervisor may make a case {} ({} may not)",
        to.as_str(),
        role.in_words()
    ))
}

/// Whether `role` may move a case from `from` to `to` in one write (the state machine and the
/// matrix, not what the record says: `check_case_facts`).
fn check_case_status(
    role: Role,
    from: CaseStatus,
    to: CaseStatus,
    has_referral: bool,
) -> Result<(), NotAllowed> {
    if from == to {
        return Ok(());
    }
    let Some(start) = case_start(role, from, to) else {
        return Err(case_status_rule(role, from, to));
    };
    if start == CaseStatus::Identified && to != CaseStatus::Identified && !has_referral {
        return Err(not_allowed(
            "a case leaves identified by being referred, with refer_case, which records \
             the referral",
        ));
    }
    Ok(())
}

/// Whether `role` may take a case from status `from` to the status `case` stands at, by
/// steps of its own (the state machine and the matrix; what the record says for that status
/// is `check_case_facts`'s). What two devices' edits merged leave, from the status a copy
/// held: a late step made on an older copy must not take a case back from closed. With
/// `since_reopened`, only a referral of the episode the case is in takes it on from identified:
/// a case reopened keeps the referrals of the one its verification ended, and waits for a new
/// one (a monitor's late step from referred took a case a supervisor had just reopened on to
/// services, through the old referral).
pub fn check_status_reached(
    role: Role,
    from: CaseStatus,
    case: &ChildCase,
    since_reopened: bool,
) -> Result<(), NotAllowed> {
    let referred = match since_reopened {
        true => referred_since(&case.referrals, case.remediated_on),
        false => !case.referrals.is_empty(),
    };
    check_case_status(role, from, case.status, referred)
}

/// Whether `referrals` hold one of the episode a case verified on `verified` is in: any, for a
/// case never verified; one dated after the verification, for a case reopened since (it keeps
/// the referrals of the episode its verification ended, and waits for a new one: a monitor's
/// plain update took a reopened case on to services through the old referral).
fn referred_since(
    referrals: &std::collections::BTreeMap<Uuid, crate::domain::records::Referral>,
    verified: Option<chrono::NaiveDate>,
) -> bool {
    referrals
        .values()
        .any(|referral| verified.is_none_or(|day| referral.date > day))
}

/// Whether `role` may take `step` (acting as user `user`); the error names the rule.
pub fn check_step(role: Role, user: Uuid, step: &Step) -> Result<(), NotAllowed> {
    match step {
        Step::Create(kind) | Step::Edit(kind) => {
            if kinds(role).contains(kind) {
                Ok(())
            } else {
                Err(not_allowed(format!(
                    "{} does not work with {kind} records",
                    role.in_words()
                )))
            }
        }
        Step::Administration(kind) => Err(not_allowed(format!(
            "{kind} records are changed by the hub's administrator only"
        ))),
        Step::CaseStatus {
            from,
            to,
            has_referral,
            tracking,
        } => {
            if from == to {
                return Ok(());
            }
            check_case_status(role, *from, *to, *has_referral)?;
            if *tracking == Tracking::Unverified && verifies_then_reopens(role, *from, *to) {
                return Err(not_allowed(format!(
                    "a case goes back from {} to identified only through its verification, \
                     which records its verification date (remediated_on)",
                    from.as_str()
                )));
            }
            check_case_facts(*to, *tracking)
        }
        Step::ReferralAdded => Ok(()),
        Step::FollowUpAdded if role == Role::Inspector => Err(not_allowed(
            "an inspector opens and refers child cases; follow-ups are recorded by monitors and supervisors",
        )),
        Step::FollowUpAdded => Ok(()),
        Step::ReferralRemoved | Step::FollowUpRemoved if role != Role::Supervisor => {
            Err(not_allowed(format!(
                "only a supervisor may remove a referral or a follow-up ({} may not)",
                role.in_words()
            )))
        }
        Step::ReferralRemoved | Step::FollowUpRemoved => Ok(()),
        Step::LastReferralRemoved { status } => Err(not_allowed(format!(
            "a {} case keeps at least one referral: record the right one before removing this one",
            status.as_str()
        ))),
        Step::Remediated { .. } if role != Role::Supervisor => Err(not_allowed(format!(
            "only a supervisor may record a verification ({} may not)",
            role.in_words()
        ))),
        Step::Remediated {
            unverifies: Some(status),
            ..
        } => Err(not_allowed(format!(
            "a {} case keeps its verification date (remediated_on): reopen it to identified first",
            status.as_str()
        ))),
        Step::Remediated {
            unverifies: None,
            refacts: Some((status, tracking)),
        } => check_case_facts(*status, *tracking),
        Step::Remediated {
            unverifies: None,
            refacts: None,
        } => Ok(()),
        Step::Merge if role != Role::Supervisor => {
            Err(not_allowed("only a supervisor may merge cases"))
        }
        Step::VerifiedBeforeReferral => Err(not_allowed(VERIFIED_BEFORE_REFERRAL)),
        Step::ReviewerCleared => Err(not_allowed(
            "a reviewed visit keeps its reviewer: review it again to change the review",
        )),
        Step::MergedDuplicateEdited => Err(not_allowed(MERGED_AWAY)),
        Step::Merge => Ok(()),
        Step::VisitStatus { from, to } => {
            if from == to || reachable(visit_edges(role), *from, *to) {
                return Ok(());
            }
            if reachable(visit_edges(Role::Supervisor), *from, *to) {
                return Err(not_allowed(format!(
                    "only a supervisor may review a visit ({} may not)",
                    role.in_words()
                )));
            }
            Err(not_allowed(format!(
                "a visit cannot go from {} to {}",
                from.as_str(),
                to.as_str()
            )))
        }
        // What a visit records is its visitor's account, which a supervisor validates or
        // returns: no one else rewrites it, and once submitted it stays what was reviewed (a
        // validated visit's findings vouched for, then emptied, would still read as validated).
        Step::VisitContent { visitor, .. } if *visitor != user => Err(not_allowed(
            "a visit's content is changed by its visitor only",
        )),
        // Open before the write or after it: a write made offline may hold a return and the
        // correction after it (a supervisor's own visit), or the correction and its submission.
        Step::VisitContent {
            from: from @ (VisitStatus::Submitted | VisitStatus::Validated),
            to: VisitStatus::Submitted | VisitStatus::Validated,
            ..
        } => Err(not_allowed(format!(
            "a {} visit's content is not changed: a supervisor returns it to its visitor for a correction",
            from.as_str()
        ))),
        Step::VisitContent { .. } => Ok(()),
        Step::VisitSubmitted { visitor } if *visitor != user => Err(not_allowed(
            "a visit is submitted by its visitor: it is their account of what they saw",
        )),
        Step::VisitSubmitted { .. } => Ok(()),
        Step::Inspection { .. } if role == Role::CommunityMonitor => Err(not_allowed(
            "a labour inspection, and a warning or an order, are a labour inspector's: a community monitor records a monitoring round or a follow-up visit",
        )),
        Step::Inspection { .. } => Ok(()),
        Step::Review { reviewer } => {
            if role != Role::Supervisor {
                return Err(not_allowed(format!(
                    "only a supervisor may review a visit ({} may not)",
                    role.in_words()
                )));
            }
            match reviewer {
                Some(r) if *r != user => Err(not_allowed(
                    "a visit's reviewer is the supervisor who reviews it",
                )),
                _ => Ok(()),
            }
        }
    }
}

impl Step {
    /// The field a refusal of this step names: the one the step changes, or the record's kind
    /// for a step on the record as a whole.
    pub fn field(&self) -> &'static str {
        match self {
            Step::Create(kind) | Step::Edit(kind) | Step::Administration(kind) => kind.as_str(),
            Step::CaseStatus { .. } | Step::VisitStatus { .. } | Step::VisitSubmitted { .. } => {
                "status"
            }
            Step::ReferralAdded | Step::ReferralRemoved | Step::LastReferralRemoved { .. } => {
                "referrals"
            }
            Step::FollowUpAdded | Step::FollowUpRemoved => "followups",
            Step::Remediated { .. } | Step::VerifiedBeforeReferral => "remediated_on",
            Step::Merge | Step::MergedDuplicateEdited => "merged_into",
            Step::Review { .. } | Step::ReviewerCleared => "reviewed_by",
            Step::VisitContent { .. } => RecordKind::Visit.as_str(),
            Step::Inspection { field } => field,
        }
    }

    /// The status step of a write that leaves `case` as it is, from `from`.
    pub fn case_status(from: CaseStatus, case: &ChildCase) -> Step {
        Step::CaseStatus {
            from,
            to: case.status,
            has_referral: !case.referrals.is_empty(),
            tracking: Tracking::of(case),
        }
    }
}

/// The steps from `before` (none for a new record) to `after`, which must be of one kind.
pub fn steps(before: Option<Subject<'_>>, after: Subject<'_>) -> Vec<Step> {
    let kind = after.kind();
    let mut steps = vec![match before {
        None => Step::Create(kind),
        Some(_) => Step::Edit(kind),
    }];
    match (before, after) {
        (_, Subject::Administered(kind)) => return vec![Step::Administration(kind)],
        (None, Subject::ChildCase(c)) => case_steps(None, c, &mut steps),
        (Some(Subject::ChildCase(b)), Subject::ChildCase(c)) => case_steps(Some(b), c, &mut steps),
        (None, Subject::Visit(v)) => visit_steps(None, v, &mut steps),
        (Some(Subject::Visit(b)), Subject::Visit(v)) => visit_steps(Some(b), v, &mut steps),
        _ => {}
    }
    steps
}

/// How a write that overrides values side by side (`doc::overridden_values`) is judged, by the
/// fields of one device's values it overrides.
pub enum Settling {
    /// Values a record of its kind decides together (a visit's review: its status first, then
    /// who made it and why), the write leaving the record with such a decision: a review (a
    /// monitor, or the visitor, kept one supervisor's return over another's validation). When
    /// it keeps one of the decisions side by side as it was made, judged from the record with
    /// that decision (either review may be kept, the one the merge did not show too); any
    /// other is the writer's own, judged as such.
    Review {
        step: Step,
        fields: &'static [&'static str],
    },
    /// Such values, which the write sets aside for a decision of another kind (its visitor
    /// submitting again a visit two supervisors returned): the step from each device's
    /// decision to it, whoever made that decision (`fields[1..]` taken as written).
    Superseded { fields: &'static [&'static str] },
    /// Any other values: a step from each device's values, as if they were shown.
    Values,
}

/// `Settling` of a write leaving the record as `after` that overrides values of `fields`.
pub fn settling<'a>(mut fields: impl Iterator<Item = &'a str>, after: Subject<'_>) -> Settling {
    use crate::domain::records::{Record, Visit};
    let Subject::Visit(visit) = after else {
        return Settling::Values;
    };
    let Some(group) = Visit::DECIDED_TOGETHER
        .iter()
        .copied()
        .find(|group| fields.any(|field| group.contains(&field)))
    else {
        return Settling::Values;
    };
    match visit.status {
        VisitStatus::Validated | VisitStatus::Returned => Settling::Review {
            step: Step::Review { reviewer: None },
            fields: group,
        },
        _ => Settling::Superseded { fields: group },
    }
}

/// Why a merged duplicate takes no workflow step nor edit (`Step::MergedDuplicateEdited`).
pub const MERGED_AWAY: &str = "the case was merged into another case: work on that case";

/// What a merged duplicate holds of the child, beside what may still change on it: its
/// version, filing, assignee, reference versions, derived fields and the case it is merged
/// into.
fn held_of_the_child(case: &ChildCase) -> ChildCase {
    ChildCase {
        version: Default::default(),
        area: Default::default(),
        identified_by: Uuid::nil(),
        captured_with: Default::default(),
        classification: None,
        follow_up_due: None,
        merged_into: None,
        ..case.clone()
    }
}

const VERIFIED_BEFORE_REFERRAL: &str = "a case is verified withdrawn or prevented \
     (remediated_on) on or after the day of its first referral: one of the two dates is wrong";

/// The step a case's record breaks by its values alone, whatever write led there: verified
/// before its first referral, or past identified with no referral. A hub judges by it what
/// two devices' edits, each allowed, make together.
pub fn case_left_inconsistent(case: &ChildCase) -> Option<Step> {
    if verified_before_referral(case) {
        return Some(Step::VerifiedBeforeReferral);
    }
    past_identified_without_referral(case).then_some(Step::LastReferralRemoved {
        status: case.status,
    })
}

/// Whether a case stands referred, under services or verified with no referral to say so
/// (`Step::LastReferralRemoved`).
fn past_identified_without_referral(case: &ChildCase) -> bool {
    case.referrals.is_empty() && case.status != CaseStatus::Identified
}

/// Whether a case's verification date falls before the day of its first referral
/// (`Step::VerifiedBeforeReferral`).
pub fn verified_before_referral(case: &ChildCase) -> bool {
    case.remediated_on
        .zip(case.referrals.values().map(|r| r.date).min())
        .is_some_and(|(verified, first)| verified < first)
}

fn case_steps(before: Option<&ChildCase>, after: &ChildCase, steps: &mut Vec<Step>) {
    // Pointed at another kept case (two merges of one duplicate, one kept in a resolution),
    // it is merged again: a supervisor's step (`Step::Merge`, below), not an edit of it.
    if let Some(before) = before.filter(|b| b.is_merged_duplicate())
        && (held_of_the_child(before) != held_of_the_child(after) || !after.is_merged_duplicate())
    {
        steps.push(Step::MergedDuplicateEdited);
    }
    // A new case starts identified: a case registered offline and referred before the sync
    // arrives referred, having taken both steps.
    let from = before.map_or(CaseStatus::Identified, |b| b.status);
    let empty = ChildCase {
        referrals: Default::default(),
        followups: Default::default(),
        ..after.clone()
    };
    let before_or_empty = before.unwrap_or(&empty);
    if from != after.status {
        let mut step = Step::case_status(from, after);
        // A case reopened goes on to services only by a referral of its new episode: one this
        // write records, or one dated after the verification (a monitor's plain update took a
        // reopened case on to services through the old referral, and settled a reopening so).
        // A supervisor taking it back to where its verification left it needs none.
        if let Step::CaseStatus { has_referral, .. } = &mut step
            && matches!(
                after.status,
                CaseStatus::Referred | CaseStatus::ReceivingServices
            )
        {
            // Judged on the referrals held before the write, as the verification dates them
            // now: an old referral re-dated by the same write is no new one.
            *has_referral = referred_since(&before_or_empty.referrals, after.remediated_on)
                || after
                    .referrals
                    .keys()
                    .any(|k| !before_or_empty.referrals.contains_key(k));
        }
        // The follow-ups a write adds may come after its status step: a case verified
        // withdrawn offline, then seen still working three months on, is pushed as one write
        // (the phone took each step in turn). Judged on the follow-ups it held before, the
        // step is one that was allowed when taken.
        if let Step::CaseStatus { to, tracking, .. } = &mut step
            && check_case_facts(*to, *tracking).is_err()
        {
            let earlier = Tracking::of(&ChildCase {
                followups: before_or_empty.followups.clone(),
                ..after.clone()
            });
            if check_case_facts(*to, earlier).is_ok() {
                *tracking = earlier;
            }
        }
        steps.push(step);
    }
    // Recording one and changing one already recorded are the same step.
    if after
        .referrals
        .iter()
        .any(|(k, r)| before_or_empty.referrals.get(k) != Some(r))
    {
        steps.push(Step::ReferralAdded);
    }
    if before_or_empty
        .referrals
        .keys()
        .any(|k| !after.referrals.contains_key(k))
    {
        steps.push(Step::ReferralRemoved);
        if past_identified_without_referral(after) {
            steps.push(Step::LastReferralRemoved {
                status: after.status,
            });
        }
    }
    if after
        .followups
        .iter()
        .any(|(k, f)| before_or_empty.followups.get(k) != Some(f))
    {
        steps.push(Step::FollowUpAdded);
    }
    if before_or_empty
        .followups
        .keys()
        .any(|k| !after.followups.contains_key(k))
    {
        steps.push(Step::FollowUpRemoved);
    }
    if verified_before_referral(after) && !before.is_some_and(verified_before_referral) {
        steps.push(Step::VerifiedBeforeReferral);
    }
    if after.remediated_on != before.and_then(|b| b.remediated_on) {
        let needs_date = matches!(
            after.status,
            CaseStatus::Withdrawn | CaseStatus::Prevented | CaseStatus::Closed
        );
        // The date judged with the follow-ups held before the write (those it adds are
        // observations, never refused for a decision), where the status stays: a status
        // step judges its own facts.
        let refacts = (needs_date
            && from == after.status
            && after.remediated_on.is_some()
            && before.is_some_and(|b| check_case_facts(b.status, Tracking::of(b)).is_ok()))
        .then(|| {
            let redated = ChildCase {
                followups: before_or_empty.followups.clone(),
                ..after.clone()
            };
            (after.status, Tracking::of(&redated))
        })
        .filter(|(status, tracking)| check_case_facts(*status, *tracking).is_err());
        steps.push(Step::Remediated {
            unverifies: (needs_date && after.remediated_on.is_none()).then_some(after.status),
            refacts,
        });
    }
    if after.merged_into != before.and_then(|b| b.merged_into)
        || before.map_or(!after.merged_from.is_empty(), |b| {
            b.merged_from != after.merged_from
        })
    {
        steps.push(Step::Merge);
    }
}

fn visit_steps(before: Option<&Visit>, after: &Visit, steps: &mut Vec<Step>) {
    let from = before.map_or(VisitStatus::Draft, |b| b.status);
    // Judged when set: a visit recorded so before the rule takes its later steps.
    if after.kind == VisitKind::LabourInspection && before.is_none_or(|b| b.kind != after.kind) {
        steps.push(Step::Inspection { field: "kind" });
    }
    let powers = |v: &Visit| {
        v.actions
            .iter()
            .filter(|a| matches!(a, VisitAction::Warning | VisitAction::Order))
            .copied()
            .collect::<BTreeSet<_>>()
    };
    if !powers(after).is_subset(&before.map(powers).unwrap_or_default()) {
        steps.push(Step::Inspection { field: "actions" });
    }
    if let Some(before) = before
        && visit_content(before) != visit_content(after)
    {
        steps.push(Step::VisitContent {
            from,
            to: after.status,
            visitor: before.visitor_id,
        });
    }
    if from != after.status {
        steps.push(Step::VisitStatus {
            from,
            to: after.status,
        });
        if let Some(before) = before
            && matches!(from, VisitStatus::Draft | VisitStatus::Returned)
            && after.status != VisitStatus::Draft
        {
            steps.push(Step::VisitSubmitted {
                visitor: before.visitor_id,
            });
        }
    }
    if after.reviewed_by.is_none()
        && before.is_some_and(|b| b.reviewed_by.is_some())
        && matches!(after.status, VisitStatus::Validated | VisitStatus::Returned)
    {
        steps.push(Step::ReviewerCleared);
    }
    if after.reviewed_by != before.and_then(|b| b.reviewed_by)
        || after.review_comment != before.map_or("", |b| b.review_comment.as_str())
    {
        steps.push(Step::Review {
            reviewer: after.reviewed_by,
        });
    }
}

/// A visit's content (or its files: `files_changed`) changed by a write whose sender's
/// changes were made on a visit still open to them, which reached the hub once the visit was submitted or reviewed (`held`, as the
/// hub holds it before the write: another device of the visitor submitted it meanwhile, and a
/// supervisor may have validated it). Merged, a validated visit would vouch for content no one
/// reviewed: refused, until a supervisor returns the visit (then the same changes are taken).
pub fn check_visit_still_open(
    held: &Visit,
    base: &Visit,
    theirs: &Visit,
    files_changed: bool,
) -> Result<(), NotAllowed> {
    if matches!(held.status, VisitStatus::Submitted | VisitStatus::Validated)
        && matches!(base.status, VisitStatus::Draft | VisitStatus::Returned)
        && (files_changed || visit_content(base) != visit_content(theirs))
    {
        return Err(not_allowed(format!(
            "the visit was {} meanwhile: its content is what the supervisor reviews, and changes \
             to it wait until a supervisor returns it",
            held.status.as_str()
        )));
    }
    Ok(())
}

/// What a visit records: the visit without its status, its review and what the store keeps.
fn visit_content(visit: &Visit) -> Visit {
    Visit {
        id: Uuid::nil(),
        version: Default::default(),
        status: VisitStatus::Draft,
        review_comment: String::new(),
        reviewed_by: None,
        // Derived from the answers, which the comparison sees.
        breaches: Vec::new(),
        ..visit.clone()
    }
}

/// What a write does to a record's files, refused: the field to name (`attachments`, or the
/// entry's own `attachments.<id>`) and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesNotAllowed {
    pub field: String,
    pub refusal: NotAllowed,
}

/// Who may change a record's files: `was`, the entries of the version a write was made on
/// (`before`), and `now`, those it leaves (`after`). An entry is taken off, or its caption
/// changed, by the user who captured it, or by whoever answers for the record's account: a
/// visit's visitor, a supervisor for a child case or a workplace. A visit submitted or
/// validated keeps the files it was reviewed with, as it keeps its content
/// (`Step::VisitContent`): a supervisor returns it to its visitor for a correction. Adding
/// one's own file stays open to whoever may change the record (a joint visit's social
/// worker); that a new entry names its own capturer is the hub's authorship rule. The one rule
/// for a phone's own writes, what it takes from a peer or a bundle, and the hub's pushes: an
/// inspector's phone took a monitor's photo of children carrying loads off a validated visit,
/// and the hub, then every phone, let the file go.
pub fn check_files(
    role: Role,
    user: Uuid,
    (before, after): (Option<Subject<'_>>, Subject<'_>),
    (was, now): (&[Attachment], &[Attachment]),
) -> Result<(), FilesNotAllowed> {
    let touched: Vec<&Attachment> = was
        .iter()
        .filter(|w| {
            now.iter()
                .find(|n| n.id == w.id)
                .is_none_or(|n| n.caption != w.caption)
        })
        .collect();
    let added = now.iter().any(|n| !was.iter().any(|w| w.id == n.id));
    let reviewed = |v: &Visit| matches!(v.status, VisitStatus::Submitted | VisitStatus::Validated);
    let visitor = match (before, after) {
        (Some(Subject::Visit(was)), Subject::Visit(visit)) => {
            if reviewed(was) && reviewed(visit) && (added || !touched.is_empty()) {
                return Err(FilesNotAllowed {
                    field: "attachments".into(),
                    refusal: not_allowed(
                        "a submitted or validated visit keeps the files it was reviewed with: a \
                         supervisor returns it to its visitor for a correction",
                    ),
                });
            }
            Some(was.visitor_id)
        }
        (_, Subject::Visit(visit)) => Some(visit.visitor_id),
        _ => None,
    };
    let answers_for_the_record = match visitor {
        Some(visitor) => visitor == user,
        None => role == Role::Supervisor,
    };
    match touched
        .into_iter()
        .find(|entry| entry.captured_by != user && !answers_for_the_record)
    {
        None => Ok(()),
        Some(entry) => Err(FilesNotAllowed {
            field: format!("attachments.{}", entry.id),
            refusal: not_allowed(match visitor {
                Some(_) => {
                    "a visit's file is taken off, or its caption changed, by its visitor or the \
                     one who captured it"
                }
                None => {
                    "a file is taken off, or its caption changed, by the one who captured it or \
                     a supervisor"
                }
            }),
        }),
    }
}

/// Checks every step from `before` to `after` for `role`, acting as `user`: the first step not
/// allowed is the error.
pub fn check(
    role: Role,
    user: Uuid,
    before: Option<Subject<'_>>,
    after: Subject<'_>,
) -> Result<(), NotAllowed> {
    steps(before, after)
        .iter()
        .try_for_each(|step| check_step(role, user, step))
}

/// A user's areas, each code matched at the level the area tree in force gives it
/// (`ReferenceData::grants_of`): a community code covers only records of that community, a
/// district code those of its district. A code found in no published tree covers nothing: a hub
/// that has not published a country's tree serves none of its records, rather than matching
/// codes at any level (a record filed with a community code as its country would otherwise
/// reach whoever holds that community).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AreaScope {
    grants: Vec<AreaGrant>,
}

impl AreaScope {
    pub fn resolve<'a>(
        codes: impl IntoIterator<Item = &'a String>,
        reference: &ReferenceData,
    ) -> AreaScope {
        let mut grants: Vec<_> = codes
            .into_iter()
            .flat_map(|code| reference.grants_of(code))
            .collect();
        grants.sort();
        grants.dedup();
        AreaScope { grants }
    }

    pub fn covers(&self, area: &Area) -> bool {
        self.grants.iter().any(|g| g.covers(area))
    }

    pub fn grants(&self) -> &[AreaGrant] {
        &self.grants
    }
}

/// A device store's user as the hub last described them. Every local write of a device that
/// knows it is checked against the matrix as the hub will check it. (Scope is the hub's to judge:
/// a record filed outside the user's areas is refused at the push and stays on the device.)
#[derive(Debug, Clone)]
pub(crate) struct Acting {
    pub role: Role,
    pub user: Uuid,
    /// What the user receives, as the hub last described them, once the device holds an area
    /// tree to resolve their area codes against; none for a user who holds no area
    /// (deactivated, every area taken away), who still records what they see: the hub keeps
    /// it for a supervisor's review.
    pub scope: Option<Scope>,
}

impl Acting {
    /// Checks a local write, from the record as stored (`before`, none for a new record) to the
    /// record as it will be stored.
    pub(crate) fn check_write<R: Record>(
        &self,
        before: Option<&R>,
        after: &R,
    ) -> Result<(), WriteRefused> {
        // Filed where the user does not work (a new record, or one moved): the hub would
        // refuse the whole record out of scope, naming nothing, at the next sync. An edit of a
        // record left where it is goes on (one that left the scope goes to review).
        if let (Some(area), Some(scope)) = (after.area(), &self.scope)
            && before.is_none_or(|b| b.area() != Some(area))
            && !scope.receives(R::KIND, Some(area))
        {
            return Err(WriteRefused::NotAllowed(not_allowed(format!(
                "the record's area (area) is outside this user's areas ({}): file it in one \
                 of theirs",
                self.role.in_words()
            ))));
        }
        let before = before.map(|b| b.subject());
        if let Subject::Visit(visit) = after.subject() {
            let was = match before {
                Some(Subject::Visit(was)) => Some(was),
                _ => None,
            };
            check_visitor(was, visit, &[self.user])?;
        }
        for step in steps(before, after.subject()) {
            check_step(self.role, self.user, &step).map_err(|e| {
                match (&step, after.subject()) {
                    // Two dates at odds: the user corrects the one they just typed.
                    (Step::VerifiedBeforeReferral, Subject::ChildCase(case)) => {
                        WriteRefused::Invalid(ValidationError::new(
                            dates_at_odds(before, case),
                            e.rule,
                        ))
                    }
                    _ => WriteRefused::NotAllowed(e),
                }
            })?;
        }
        Ok(())
    }
}

/// The date a write that leaves `after` verified before its first referral changed: the
/// verification's, unless only a referral's moved.
fn dates_at_odds(before: Option<Subject<'_>>, after: &ChildCase) -> String {
    let before = match before {
        Some(Subject::ChildCase(before)) => before,
        _ => return Step::VerifiedBeforeReferral.field().into(),
    };
    if before.remediated_on != after.remediated_on {
        return Step::VerifiedBeforeReferral.field().into();
    }
    after
        .referrals
        .iter()
        .filter(|(key, referral)| before.referrals.get(*key) != Some(*referral))
        .min_by_key(|(_, referral)| referral.date)
        .map_or_else(
            || Step::VerifiedBeforeReferral.field().into(),
            |(key, _)| format!("referrals.{key}.date"),
        )
}

/// Whom a visit names as its visitor (`visitor_id`: who made the visit and answers for what it
/// records, and whose due list its follow-up is on): the user who records it, set when the
/// visit is created and never changed after. A visit, a labour inspection above all, filed in
/// another user's name would be a forgery. `users` are who may be named: the user writing, and
/// on the hub the user who made changes a supervisor accepts after review. The one rule for a
/// phone's local writes and the hub's pushes.
pub fn check_visitor(
    before: Option<&Visit>,
    after: &Visit,
    users: &[Uuid],
) -> Result<(), NotAllowed> {
    match before {
        Some(before) if before.visitor_id == after.visitor_id => Ok(()),
        Some(_) => Err(not_allowed("a visit's visitor is never changed")),
        None if users.contains(&after.visitor_id) => Ok(()),
        None => Err(not_allowed("a visit's visitor is the user who records it")),
    }
}

impl User {
    /// Whether an area lies within this user's assignment: each code at the level the area
    /// trees in `reference` give it (`AreaScope`; a code in no tree covers nothing).
    pub fn covers(&self, area: &Area, reference: &ReferenceData) -> bool {
        AreaScope::resolve(&self.areas, reference).covers(area)
    }

    /// What the user receives and may change: their role and areas (a deactivated user,
    /// nothing).
    pub fn scope(&self, reference: &ReferenceData) -> Scope {
        if !self.active {
            return Scope::nothing();
        }
        Scope::of(self.role, &self.areas, reference)
    }
}

/// Whom a child case may be assigned to (`identified_by`: the user whose due lists the case's
/// follow-ups are on, and to whom a hand-over gives it): a user who receives the case, by the
/// role and areas the hub gives them (`Scope::receives`). The one rule for a phone handing a
/// case over, a phone receiving a hand-over, and the hub storing a change of assignee. The
/// refusal names no one and nothing of the case.
pub fn check_assignee(assignee: &Scope, case: &ChildCase) -> Result<(), NotAllowed> {
    if assignee.receives(RecordKind::ChildCase, Some(&case.area)) {
        Ok(())
    } else {
        Err(not_allowed(
            "a case is assigned only to a user whose role and areas cover it",
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// The state machines

impl CaseStatus {
    /// identified → referred → receiving services → withdrawn | prevented → closed; and a
    /// child found working again is reopened: withdrawn, prevented or closed → identified, to
    /// be referred again. Reopening goes back to identification, not to services: the cycle
    /// starts again from what the monitor found (a new referral, new services, a new
    /// verification), and the earlier referrals, follow-ups and verification date stay as the
    /// case's history.
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
                    | (Withdrawn | Prevented | Closed, Identified)
            )
    }
}

impl VisitStatus {
    /// draft → submitted → validated | returned; a returned visit is corrected and submitted
    /// again, and a validated one found wrong may be returned for that.
    pub fn can_become(self, next: VisitStatus) -> bool {
        use VisitStatus::*;
        self == next
            || matches!(
                (self, next),
                (Draft, Submitted)
                    | (Submitted, Validated)
                    | (Submitted, Returned)
                    | (Validated, Returned)
                    | (Returned, Submitted)
            )
    }
}

/// Whether a user of role `by` may move a case from `from` to `to` with a workflow transition
/// (what an app asks to show the steps a user can take); the error names the rule that forbids
/// it. What the case's record must say for its new status (`check_case_facts`: a verification
/// date, a follow-up after it) is checked when the transition is made.
pub fn check_case_transition(from: CaseStatus, to: CaseStatus, by: Role) -> Result<(), NotAllowed> {
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
    if to == CaseStatus::Referred {
        return Err(not_allowed(
            "a case is referred with refer_case, which records the referral",
        ));
    }
    check_case_status(by, from, to, true)
}

// ---------------------------------------------------------------------------------------------
// Who syncs, and what they receive

/// The signed-in user's role and area codes, as the hub tells a device at each sync: the role
/// the device's workflow calls act with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct UserProfile {
    pub role: Role,
    pub areas: Vec<String>,
}

impl UserProfile {
    /// What the user receives and may change, their area codes resolved against `reference`.
    pub fn scope(&self, reference: &ReferenceData) -> Scope {
        Scope::of(self.role, &self.areas, reference)
    }
}

/// Who is syncing: an enrolled device and the user it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub device: Uuid,
    pub user: Uuid,
    pub role: Role,
    /// Area codes assigned to the user, each matched at the level the area tree in force gives
    /// it (`Principal::scope`).
    pub areas: BTreeSet<String>,
}

impl Principal {
    /// The kinds of record this role receives and may change (`rights::kinds`). Never
    /// `Reference`: every principal receives reference data, only the hub changes it.
    pub fn kinds(&self) -> &'static [RecordKind] {
        kinds(self.role)
    }

    /// What the principal receives and may change, its area codes resolved against the area
    /// trees in `reference`.
    pub fn scope(&self, reference: &ReferenceData) -> Scope {
        Scope::of(self.role, &self.areas, reference)
    }

    /// Whether an area is within the principal's areas (see `Scope::covers`).
    pub fn covers(&self, area: &Area, reference: &ReferenceData) -> bool {
        self.scope(reference).covers(area)
    }

    /// The user's role and areas, as the hub tells the user's devices.
    pub fn profile(&self) -> UserProfile {
        UserProfile {
            role: self.role,
            areas: self.areas.iter().cloned().collect(),
        }
    }
}

/// A principal's kinds and areas, each area code at its level in the area tree in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub role: Role,
    pub areas: AreaScope,
}

impl Scope {
    /// A role's scope over area codes, each resolved against the area trees in `reference`.
    pub fn of<'a>(
        role: Role,
        areas: impl IntoIterator<Item = &'a String>,
        reference: &ReferenceData,
    ) -> Scope {
        Scope {
            role,
            areas: AreaScope::resolve(areas, reference),
        }
    }

    /// A scope that receives no field record.
    pub fn nothing() -> Scope {
        Scope {
            role: Role::Administrator,
            areas: AreaScope::default(),
        }
    }

    pub fn kinds(&self) -> &'static [RecordKind] {
        kinds(self.role)
    }

    /// Whether an area lies within the principal's areas: one of its codes is the area's code
    /// at that code's level, in the same country.
    pub fn covers(&self, area: &Area) -> bool {
        self.areas.covers(area)
    }

    /// Whether a record of this kind, filed under this area, is the principal's to receive.
    pub fn receives(&self, kind: RecordKind, area: Option<&Area>) -> bool {
        kind == RecordKind::Reference
            || (self.kinds().contains(&kind) && area.is_some_and(|a| self.covers(a)))
    }

    /// Changes when the role or what the areas resolve to change, so that a cursor issued for
    /// another scope is not reused (`walked_by`).
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint_as(self.role)
    }

    /// Whether a cursor issued under `fingerprint` walked the records this scope receives: one
    /// issued for it, or for a role that receives the same kinds over the same areas (a role
    /// corrected, areas kept, sends nothing again: the device learns its role from the
    /// answer's profile).
    pub fn walked_by(&self, fingerprint: u64) -> bool {
        Role::ALL
            .into_iter()
            .filter(|role| kinds(*role) == self.kinds())
            .any(|role| self.fingerprint_as(role) == fingerprint)
    }

    fn fingerprint_as(&self, role: Role) -> u64 {
        let mut hash = Sha256::new();
        hash.update([role as u8]);
        for grant in self.areas.grants() {
            for part in [&grant.country, grant.level.as_str(), &grant.code] {
                hash.update(part.as_bytes());
                hash.update([0]);
            }
        }
        u64::from_le_bytes(hash.finalize()[..8].try_into().expect("8 bytes"))
    }
}

//! The role matrix of ARCHITECTURE.md, cell by cell, as the tests state it (independently of
//! `rights.rs`): each cell is a record as it stands before a step (none for a creation), the
//! step, and the roles allowed to take it. The device's tests (`core/tests/rights.rs`) and the
//! hub's (`server/tests/hub_rules_matrix.rs`) run every cell for every role.

use chrono::{FixedOffset, NaiveDate, TimeZone};
use uuid::Uuid;
use vigie_core::*;

pub const ROLES: [Role; 3] = [Role::CommunityMonitor, Role::Inspector, Role::Supervisor];
const ALL: &[Role] = &ROLES;
const SUPERVISOR: &[Role] = &[Role::Supervisor];
const MONITOR_AND_SUPERVISOR: &[Role] = &[Role::CommunityMonitor, Role::Supervisor];
const INSPECTOR_AND_SUPERVISOR: &[Role] = &[Role::Inspector, Role::Supervisor];
const NOBODY: &[Role] = &[];

/// A record of one of the kinds the matrix covers.
#[derive(Debug, Clone)]
pub enum Subject {
    Workplace(Workplace),
    Visit(Visit),
    Case(ChildCase),
}

impl Subject {
    pub fn id(&self) -> Uuid {
        match self {
            Subject::Workplace(r) => r.id,
            Subject::Visit(r) => r.id,
            Subject::Case(r) => r.id,
        }
    }

    pub fn set_id(&mut self, id: Uuid) {
        match self {
            Subject::Workplace(r) => r.id = id,
            Subject::Visit(r) => r.id = id,
            Subject::Case(r) => r.id = id,
        }
    }

    /// Creates the record in `store`.
    pub fn create(&self, store: &mut Store) -> Result<()> {
        match self {
            Subject::Workplace(r) => store.create(r).map(|_| ()),
            Subject::Visit(r) => store.create(r).map(|_| ()),
            Subject::Case(r) => store.create(r).map(|_| ()),
        }
    }

    /// Reads the record `id` of this subject's kind from `store`.
    pub fn read(&self, store: &Store, id: Uuid) -> Subject {
        match self {
            Subject::Workplace(_) => Subject::Workplace(store.get(id).unwrap()),
            Subject::Visit(_) => Subject::Visit(store.get(id).unwrap()),
            Subject::Case(_) => Subject::Case(store.get(id).unwrap()),
        }
    }

    /// Writes this (edited) record to `store`.
    pub fn update(&self, store: &mut Store) -> Result<()> {
        match self {
            Subject::Workplace(r) => store.update(r).map(|_| ()),
            Subject::Visit(r) => store.update(r).map(|_| ()),
            Subject::Case(r) => store.update(r).map(|_| ()),
        }
    }
}

/// One cell: a step on a record, and who may take it.
pub struct Cell {
    pub name: &'static str,
    /// The record before the step (created by a supervisor, in the community CI-R1-D1-C01);
    /// none when the step is the creation.
    pub before: Option<fn(Uuid) -> Subject>,
    /// The step: from the record before (or a new one), as `user` makes it.
    pub step: fn(&mut Subject, Uuid),
    pub allowed: &'static [Role],
}

/// The case the merge cell merges into: a hub's test makes it first (the hub refuses a merge
/// into a case it does not hold).
pub const KEPT_CASE: Uuid = Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0c01);

/// The case `KEPT_CASE` names, as a supervisor registers it.
pub fn kept_case(by: Uuid) -> Subject {
    let mut kept = case(CaseStatus::Identified, by);
    kept.set_id(KEPT_CASE);
    kept
}

pub fn area() -> Area {
    Area::new("CI", "CI-R1", "CI-R1-D1", "CI-R1-D1-C01")
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 4, d).unwrap()
}

fn workplace() -> Subject {
    Subject::Workplace(Workplace::new(
        "Champ Koffi",
        "cocoa",
        Formality::Informal,
        area(),
    ))
}

fn visit(status: VisitStatus, by: Uuid) -> Subject {
    let w = Workplace::new("Champ Koffi", "cocoa", Formality::Informal, area());
    let start = FixedOffset::east_opt(0)
        .unwrap()
        .with_ymd_and_hms(2026, 4, 2, 9, 0, 0)
        .unwrap();
    let mut v = Visit::new(VisitKind::CommunityMonitoring, &w, by, start);
    v.findings = "Deux enfants au champ.".into();
    v.status = status;
    Subject::Visit(v)
}

fn referral() -> Referral {
    Referral {
        service: ServiceKind::Education,
        provider: "École de Soubré".into(),
        date: day(3),
        outcome: String::new(),
    }
}

fn follow_up() -> FollowUp {
    FollowUp {
        date: day(20),
        situation: FollowUpSituation::InSchool,
        notes: String::new(),
        next_due: None,
    }
}

/// A follow-up after the verification (`case`'s, day 10) that finds the child still working.
fn still_working() -> FollowUp {
    FollowUp {
        date: day(25),
        situation: FollowUpSituation::StillWorking,
        ..follow_up()
    }
}

/// A withdrawn case with no follow-up after its verification.
fn withdrawn_unfollowed(by: Uuid) -> Subject {
    let mut s = case(CaseStatus::Withdrawn, by);
    as_case(&mut s).followups.clear();
    s
}

fn case(status: CaseStatus, by: Uuid) -> Subject {
    let mut c = ChildCase::new("CASE-M", "Awa Koné", Sex::Female, area(), day(1), by);
    c.estimated_age = Some(12);
    c.hours_per_week = 20;
    if status != CaseStatus::Identified {
        c.referrals.insert(Uuid::now_v7(), referral());
    }
    if matches!(
        status,
        CaseStatus::Withdrawn | CaseStatus::Prevented | CaseStatus::Closed
    ) {
        c.remediated_on = Some(day(10));
        c.followups.insert(Uuid::now_v7(), follow_up());
    }
    c.status = status;
    Subject::Case(c)
}

fn as_case(s: &mut Subject) -> &mut ChildCase {
    match s {
        Subject::Case(c) => c,
        _ => panic!("not a case"),
    }
}

fn as_visit(s: &mut Subject) -> &mut Visit {
    match s {
        Subject::Visit(v) => v,
        _ => panic!("not a visit"),
    }
}

/// Every cell of the matrix.
pub fn cells() -> Vec<Cell> {
    vec![
        Cell {
            name: "workplace: create",
            before: None,
            step: |s, _| *s = workplace(),
            allowed: ALL,
        },
        Cell {
            name: "workplace: change",
            before: Some(|_| workplace()),
            step: |s, _| match s {
                Subject::Workplace(w) => w.owner_name = "Yao".into(),
                _ => unreachable!(),
            },
            allowed: ALL,
        },
        Cell {
            name: "visit: create a draft",
            before: None,
            step: |s, user| *s = visit(VisitStatus::Draft, user),
            allowed: ALL,
        },
        Cell {
            name: "visit: create it submitted",
            before: None,
            step: |s, user| *s = visit(VisitStatus::Submitted, user),
            allowed: ALL,
        },
        Cell {
            name: "visit: create it validated",
            before: None,
            step: |s, user| *s = visit(VisitStatus::Validated, user),
            allowed: SUPERVISOR,
        },
        Cell {
            name: "visit: change its findings",
            before: Some(|by| visit(VisitStatus::Draft, by)),
            step: |s, _| as_visit(s).findings.push_str(" Revu."),
            allowed: ALL,
        },
        Cell {
            name: "visit: create a labour inspection",
            before: None,
            step: |s, user| {
                *s = visit(VisitStatus::Draft, user);
                as_visit(s).kind = VisitKind::LabourInspection;
            },
            allowed: INSPECTOR_AND_SUPERVISOR,
        },
        Cell {
            name: "visit: make it a labour inspection",
            before: Some(|by| visit(VisitStatus::Draft, by)),
            step: |s, _| as_visit(s).kind = VisitKind::LabourInspection,
            allowed: INSPECTOR_AND_SUPERVISOR,
        },
        Cell {
            name: "visit: give an order",
            before: Some(|by| visit(VisitStatus::Draft, by)),
            step: |s, _| {
                as_visit(s).actions.insert(VisitAction::Order);
            },
            allowed: INSPECTOR_AND_SUPERVISOR,
        },
        Cell {
            name: "visit: give advice",
            before: Some(|by| visit(VisitStatus::Draft, by)),
            step: |s, _| {
                as_visit(s).actions.insert(VisitAction::Advice);
            },
            allowed: ALL,
        },
        Cell {
            name: "visit: draft -> submitted",
            before: Some(|by| visit(VisitStatus::Draft, by)),
            step: |s, _| as_visit(s).status = VisitStatus::Submitted,
            allowed: ALL,
        },
        Cell {
            name: "visit: returned -> submitted",
            before: Some(|by| visit(VisitStatus::Returned, by)),
            step: |s, _| as_visit(s).status = VisitStatus::Submitted,
            allowed: ALL,
        },
        Cell {
            name: "visit: submitted -> validated, reviewed by themselves",
            before: Some(|by| visit(VisitStatus::Submitted, by)),
            step: |s, user| {
                let v = as_visit(s);
                v.status = VisitStatus::Validated;
                v.reviewed_by = Some(user);
            },
            allowed: SUPERVISOR,
        },
        Cell {
            name: "visit: submitted -> returned with a comment",
            before: Some(|by| visit(VisitStatus::Submitted, by)),
            step: |s, user| {
                let v = as_visit(s);
                v.status = VisitStatus::Returned;
                v.review_comment = "Compter les enfants.".into();
                v.reviewed_by = Some(user);
            },
            allowed: SUPERVISOR,
        },
        Cell {
            name: "visit: reviewed in another user's name",
            before: Some(|by| visit(VisitStatus::Submitted, by)),
            step: |s, _| {
                let v = as_visit(s);
                v.status = VisitStatus::Validated;
                v.reviewed_by = Some(Uuid::from_u128(7));
            },
            allowed: NOBODY,
        },
        Cell {
            name: "visit: validated -> returned with a comment",
            before: Some(|by| visit(VisitStatus::Validated, by)),
            step: |s, user| {
                let v = as_visit(s);
                v.status = VisitStatus::Returned;
                v.review_comment = "Les âges ne concordent pas.".into();
                v.reviewed_by = Some(user);
            },
            allowed: SUPERVISOR,
        },
        Cell {
            name: "visit: change the findings of a submitted visit",
            before: Some(|by| visit(VisitStatus::Submitted, by)),
            step: |s, _| as_visit(s).findings.push_str(" Revu."),
            allowed: NOBODY,
        },
        Cell {
            name: "visit: change the findings of a validated visit",
            before: Some(|by| visit(VisitStatus::Validated, by)),
            step: |s, _| as_visit(s).findings.clear(),
            allowed: NOBODY,
        },
        Cell {
            // A supervisor's own visit, returned and corrected in one write made offline.
            name: "visit: submitted -> returned, and its findings corrected",
            before: Some(|by| visit(VisitStatus::Submitted, by)),
            step: |s, user| {
                let v = as_visit(s);
                v.status = VisitStatus::Returned;
                v.review_comment = "Compter les enfants.".into();
                v.reviewed_by = Some(user);
                v.findings.push_str(" Corrigé.");
            },
            allowed: SUPERVISOR,
        },
        Cell {
            name: "visit: change the findings of a returned visit",
            before: Some(|by| visit(VisitStatus::Returned, by)),
            step: |s, _| as_visit(s).findings.push_str(" Corrigé."),
            allowed: ALL,
        },
        Cell {
            name: "visit: submit another user's draft",
            before: Some(|_| visit(VisitStatus::Draft, Uuid::from_u128(9))),
            step: |s, _| as_visit(s).status = VisitStatus::Submitted,
            allowed: NOBODY,
        },
        Cell {
            name: "visit: change the findings of another user's draft",
            before: Some(|_| visit(VisitStatus::Draft, Uuid::from_u128(9))),
            step: |s, _| as_visit(s).findings.push_str(" Revu."),
            allowed: NOBODY,
        },
        Cell {
            // Returned, then submitted again, in one write made offline: a supervisor's two
            // steps (a returned visit of their own they submit).
            name: "visit: validated -> submitted",
            before: Some(|by| visit(VisitStatus::Validated, by)),
            step: |s, _| as_visit(s).status = VisitStatus::Submitted,
            allowed: SUPERVISOR,
        },
        Cell {
            name: "visit: validated -> draft",
            before: Some(|by| visit(VisitStatus::Validated, by)),
            step: |s, _| as_visit(s).status = VisitStatus::Draft,
            allowed: NOBODY,
        },
        Cell {
            name: "case: create it identified",
            before: None,
            step: |s, user| *s = case(CaseStatus::Identified, user),
            allowed: ALL,
        },
        Cell {
            name: "case: create it referred, with a referral",
            before: None,
            step: |s, user| *s = case(CaseStatus::Referred, user),
            allowed: ALL,
        },
        Cell {
            name: "case: create it referred, without a referral",
            before: None,
            step: |s, user| {
                *s = case(CaseStatus::Identified, user);
                as_case(s).status = CaseStatus::Referred;
            },
            allowed: NOBODY,
        },
        Cell {
            name: "case: create it closed",
            before: None,
            step: |s, user| *s = case(CaseStatus::Closed, user),
            allowed: SUPERVISOR,
        },
        Cell {
            name: "case: change its facts",
            before: Some(|by| case(CaseStatus::Identified, by)),
            step: |s, _| as_case(s).hours_per_week = 35,
            allowed: ALL,
        },
        Cell {
            name: "case: refer (identified -> referred, with a referral)",
            before: Some(|by| case(CaseStatus::Identified, by)),
            step: |s, _| {
                let c = as_case(s);
                c.referrals.insert(Uuid::now_v7(), referral());
                c.status = CaseStatus::Referred;
            },
            allowed: ALL,
        },
        Cell {
            name: "case: a further referral",
            before: Some(|by| case(CaseStatus::ReceivingServices, by)),
            step: |s, _| {
                as_case(s).referrals.insert(Uuid::now_v7(), referral());
            },
            allowed: ALL,
        },
        Cell {
            name: "case: referred -> receiving services",
            before: Some(|by| case(CaseStatus::Referred, by)),
            step: |s, _| as_case(s).status = CaseStatus::ReceivingServices,
            allowed: MONITOR_AND_SUPERVISOR,
        },
        Cell {
            name: "case: verify (receiving services -> withdrawn)",
            before: Some(|by| case(CaseStatus::ReceivingServices, by)),
            step: |s, _| {
                let c = as_case(s);
                c.status = CaseStatus::Withdrawn;
                c.remediated_on = Some(day(15));
            },
            allowed: SUPERVISOR,
        },
        Cell {
            name: "case: verify (receiving services -> prevented)",
            before: Some(|by| case(CaseStatus::ReceivingServices, by)),
            step: |s, _| {
                let c = as_case(s);
                c.status = CaseStatus::Prevented;
                c.remediated_on = Some(day(15));
            },
            allowed: SUPERVISOR,
        },
        Cell {
            name: "case: withdrawn without a verification date",
            before: Some(|by| case(CaseStatus::ReceivingServices, by)),
            step: |s, _| as_case(s).status = CaseStatus::Withdrawn,
            allowed: NOBODY,
        },
        Cell {
            name: "case: prevented without a verification date",
            before: Some(|by| case(CaseStatus::ReceivingServices, by)),
            step: |s, _| as_case(s).status = CaseStatus::Prevented,
            allowed: NOBODY,
        },
        Cell {
            name: "case: record a verification date",
            before: Some(|by| case(CaseStatus::ReceivingServices, by)),
            step: |s, _| as_case(s).remediated_on = Some(day(16)),
            allowed: SUPERVISOR,
        },
        Cell {
            name: "case: verification date removed from a withdrawn case",
            before: Some(|by| case(CaseStatus::Withdrawn, by)),
            step: |s, _| as_case(s).remediated_on = None,
            allowed: NOBODY,
        },
        Cell {
            name: "case: verification date removed from a closed case",
            before: Some(|by| case(CaseStatus::Closed, by)),
            step: |s, _| as_case(s).remediated_on = None,
            allowed: NOBODY,
        },
        Cell {
            name: "case: close (withdrawn -> closed)",
            before: Some(|by| case(CaseStatus::Withdrawn, by)),
            step: |s, _| as_case(s).status = CaseStatus::Closed,
            allowed: SUPERVISOR,
        },
        Cell {
            name: "case: closed in one write from referred, never verified",
            before: Some(|by| case(CaseStatus::Referred, by)),
            step: |s, _| as_case(s).status = CaseStatus::Closed,
            allowed: NOBODY,
        },
        Cell {
            name: "case: close with no follow-up after the verification",
            before: Some(withdrawn_unfollowed),
            step: |s, _| as_case(s).status = CaseStatus::Closed,
            allowed: NOBODY,
        },
        Cell {
            name: "case: close when the latest follow-up finds the child still working",
            before: Some(|by| {
                let mut s = case(CaseStatus::Withdrawn, by);
                as_case(&mut s)
                    .followups
                    .insert(Uuid::now_v7(), still_working());
                s
            }),
            step: |s, _| as_case(s).status = CaseStatus::Closed,
            allowed: NOBODY,
        },
        // Each step allowed in turn on a phone offline, which the hub receives as one write.
        Cell {
            name: "case: closed, then a follow-up finds the child still working (one write)",
            before: Some(|by| case(CaseStatus::Withdrawn, by)),
            step: |s, _| {
                let c = as_case(s);
                c.status = CaseStatus::Closed;
                c.followups.insert(Uuid::now_v7(), still_working());
            },
            allowed: SUPERVISOR,
        },
        Cell {
            name: "case: verified withdrawn, then a follow-up finds the child still working (one write)",
            before: Some(|by| case(CaseStatus::ReceivingServices, by)),
            step: |s, _| {
                let c = as_case(s);
                c.status = CaseStatus::Withdrawn;
                c.remediated_on = Some(day(10));
                c.followups.insert(Uuid::now_v7(), still_working());
            },
            allowed: SUPERVISOR,
        },
        Cell {
            name: "case: reopen (closed -> identified)",
            before: Some(|by| case(CaseStatus::Closed, by)),
            step: |s, _| as_case(s).status = CaseStatus::Identified,
            allowed: SUPERVISOR,
        },
        Cell {
            name: "case: reopen and refer again (withdrawn -> referred, with a referral)",
            before: Some(|by| case(CaseStatus::Withdrawn, by)),
            step: |s, _| {
                let c = as_case(s);
                c.referrals.insert(Uuid::now_v7(), referral());
                c.status = CaseStatus::Referred;
            },
            allowed: SUPERVISOR,
        },
        Cell {
            name: "case: back (referred -> identified)",
            before: Some(|by| case(CaseStatus::Referred, by)),
            step: |s, _| as_case(s).status = CaseStatus::Identified,
            allowed: NOBODY,
        },
        Cell {
            name: "case: record a follow-up",
            before: Some(|by| case(CaseStatus::ReceivingServices, by)),
            step: |s, _| {
                as_case(s).followups.insert(Uuid::now_v7(), follow_up());
            },
            allowed: MONITOR_AND_SUPERVISOR,
        },
        Cell {
            name: "case: change a follow-up's situation",
            before: Some(|by| case(CaseStatus::Withdrawn, by)),
            step: |s, _| {
                let f = as_case(s).followups.values_mut().next().unwrap();
                f.situation = FollowUpSituation::StillWorking;
            },
            allowed: MONITOR_AND_SUPERVISOR,
        },
        Cell {
            name: "case: change a follow-up's notes",
            before: Some(|by| case(CaseStatus::Withdrawn, by)),
            step: |s, _| {
                let f = as_case(s).followups.values_mut().next().unwrap();
                f.notes = "Vu au champ.".into();
            },
            allowed: MONITOR_AND_SUPERVISOR,
        },
        Cell {
            name: "case: change a referral's outcome",
            before: Some(|by| case(CaseStatus::ReceivingServices, by)),
            step: |s, _| {
                let r = as_case(s).referrals.values_mut().next().unwrap();
                r.outcome = "Inscrite en CE1.".into();
            },
            allowed: ALL,
        },
        Cell {
            name: "case: remove a referral (one of two)",
            before: Some(|by| {
                let mut s = case(CaseStatus::ReceivingServices, by);
                as_case(&mut s).referrals.insert(Uuid::now_v7(), referral());
                s
            }),
            step: |s, _| {
                let referrals = &mut as_case(s).referrals;
                let first = *referrals.keys().next().unwrap();
                referrals.remove(&first);
            },
            allowed: SUPERVISOR,
        },
        Cell {
            name: "case: remove its last referral",
            before: Some(|by| case(CaseStatus::ReceivingServices, by)),
            step: |s, _| as_case(s).referrals.clear(),
            allowed: NOBODY,
        },
        Cell {
            name: "case: remove a follow-up",
            before: Some(|by| case(CaseStatus::Withdrawn, by)),
            step: |s, _| as_case(s).followups.clear(),
            allowed: SUPERVISOR,
        },
        Cell {
            name: "case: merge it into another case",
            before: Some(|by| case(CaseStatus::Identified, by)),
            step: |s, _| as_case(s).merged_into = Some(KEPT_CASE),
            allowed: SUPERVISOR,
        },
    ]
}

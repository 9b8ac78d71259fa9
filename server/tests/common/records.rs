//! Records: builders of workplaces, visits and child cases in the test areas.

use super::*;

pub fn area(community: &str) -> Area {
    let district = if community.starts_with(DISTRICT_2) {
        DISTRICT_2
    } else {
        DISTRICT
    };
    Area::new(COUNTRY, REGION, district, community)
}

pub fn workplace(area: Area, name: &str) -> Workplace {
    Workplace::new(name, "cocoa", Formality::Informal, area)
}

/// A visit of a workplace in `area` (the workplace itself need not be stored).
pub fn visit(area: Area, workplace: Uuid, visitor: Uuid, day: u32) -> Visit {
    let mut w = Workplace::new("Champ", "cocoa", Formality::Informal, area);
    w.id = workplace;
    let start = FixedOffset::east_opt(0)
        .expect("utc offset")
        .with_ymd_and_hms(2026, 4, day.clamp(1, 28), 9, 0, 0)
        .single()
        .expect("a valid date");
    let mut v = Visit::new(VisitKind::CommunityMonitoring, &w, visitor, start);
    v.findings = format!("Visite du {day} avril : enfants au travail.");
    v.status = VisitStatus::Submitted;
    v
}

pub fn identified_on() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 4, 1).expect("a valid date")
}

pub fn child(area: Area, name: &str, by: Uuid) -> ChildCase {
    let mut c = ChildCase::new("CASE", name, Sex::Female, area, identified_on(), by);
    c.estimated_age = Some(12);
    c.hours_per_week = 10;
    c
}

/// The area a stored record belongs to.
pub fn area_of(store: &Store, id: Uuid) -> (RecordKind, Area) {
    let kind = store.kind_of(id).expect("record present");
    let area = match kind {
        RecordKind::Workplace => {
            store
                .get::<Workplace>(id)
                .expect("read workplace")
                .location
                .area
        }
        RecordKind::Visit => store.get::<Visit>(id).expect("read visit").area,
        RecordKind::ChildCase => store.get::<ChildCase>(id).expect("read child case").area,
        RecordKind::User | RecordKind::Reference => panic!("users and reference data have no area"),
    };
    (kind, area)
}

/// A record's Automerge heads, sorted.
pub fn heads(store: &Store, id: Uuid) -> Vec<ChangeHash> {
    let bytes = store.export_document(id).expect("record present");
    let mut heads = Automerge::load(&bytes)
        .expect("stored document loads")
        .get_heads();
    heads.sort();
    heads
}

/// A record's heads, or `None` if the store lacks it.
pub fn heads_opt(store: &Store, id: Uuid) -> Option<Vec<ChangeHash>> {
    store.kind_of(id).ok().map(|_| heads(store, id))
}

/// Every row of a query, read a page at a time.
pub fn every_page<T>(mut read: impl FnMut(Page) -> Result<Vec<T>>) -> impl Iterator<Item = T> {
    let mut rows = Vec::new();
    let mut page = Page::first(Page::MAX_LIMIT);
    loop {
        let got = read(page).expect("read a page");
        let n = got.len();
        rows.extend(got);
        if n < page.limit as usize {
            return rows.into_iter();
        }
        page = page.next();
    }
}

/// Every record id in a store, by kind (workplaces, visits, child cases; not users).
pub fn all_records(store: &Store) -> Vec<(RecordKind, Uuid)> {
    let mut out = Vec::new();
    out.extend(
        every_page(|page| store.workplaces(&WorkplaceQuery::default(), page))
            .map(|w| (RecordKind::Workplace, w.id)),
    );
    out.extend(
        every_page(|page| store.visits(&VisitQuery::default(), page))
            .map(|v| (RecordKind::Visit, v.id)),
    );
    out.extend(
        every_page(|page| store.child_cases(&ChildCaseQuery::default(), page))
            .map(|c| (RecordKind::ChildCase, c.id)),
    );
    for kind in [
        RecordKind::Workplace,
        RecordKind::Visit,
        RecordKind::ChildCase,
    ] {
        assert_eq!(
            out.iter().filter(|(k, _)| *k == kind).count() as u64,
            store.count(kind).expect("count"),
            "the {kind} listing agrees with the count"
        );
    }
    out
}

/// 150 workplaces whose notes do not compress (300 KB the hub must store), recorded on the
/// device.
pub fn record_incompressible_workplaces(device: &mut Device, mut seed: u64) {
    for i in 0..150 {
        let mut place = workplace(area(C01), &format!("Workplace {i}"));
        place.notes = incompressible_text(&mut seed, 2000);
        device.store.create(&place).unwrap();
    }
}

/// `chars` letters that do not compress, from a xorshift `seed` (which moves on).
pub fn incompressible_text(seed: &mut u64, chars: usize) -> String {
    (0..chars)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            char::from(b'a' + (*seed % 26) as u8)
        })
        .collect()
}

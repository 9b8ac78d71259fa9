//! Records on real SQLite files: writing, reading, validation, queries, merging, conflicts and
//! history.

use crate::common;

use chrono::{FixedOffset, TimeZone};
use common::{at, date};
use serde_json::json;
use std::collections::BTreeSet;
use tempfile::TempDir;
use uuid::Uuid;
use vigie_core::*;

fn area(community: &str) -> Area {
    Area::new("CI", "CI-R1", "CI-R1-D1", community)
}

fn open(dir: &TempDir, name: &str, user: Uuid) -> Store {
    let key = [7u8; 32];
    Store::open(StoreConfig::new(
        dir.path().join(name),
        Encryption::Key(key),
        user,
    ))
    .unwrap()
}

fn workplace(name: &str) -> Workplace {
    let mut w = Workplace::new(name, "cocoa", Formality::Informal, area("CI-R1-D1-C01"));
    w.location.point = Some(GeoPoint {
        latitude: 6.8,
        longitude: -5.3,
        accuracy_m: Some(8.0),
    });
    w
}

fn visit(w: &Workplace, visitor: Uuid) -> Visit {
    let mut v = Visit::new(VisitKind::LabourInspection, w, visitor, at(2026, 3, 2, 9));
    v.ended_at = Some(at(2026, 3, 2, 11));
    v.checklist = ChecklistAnswers {
        checklist: "labour-inspection".into(),
        version: 1,
        answers: [
            ("LI01".to_string(), Answer::Yes),
            ("LI14".to_string(), Answer::No),
        ]
        .into_iter()
        .collect(),
    };
    v.findings = "Deux enfants portaient des charges lourdes.".into();
    v.status = VisitStatus::Submitted;
    v
}

fn child(name: &str, monitor: Uuid) -> ChildCase {
    let mut c = ChildCase::new(
        "CI-D1-0001",
        name,
        Sex::Female,
        area("CI-R1-D1-C01"),
        date(2026, 3, 2),
        monitor,
    );
    c.date_of_birth = Some(date(2014, 5, 1));
    c.age_basis = AgeBasis::BirthCertificate;
    c.hours_per_week = 20;
    c
}

fn validation_field(e: Error) -> String {
    match e {
        Error::Validation(v) => v.field,
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn records_round_trip_through_an_encrypted_file() {
    let dir = TempDir::new().unwrap();
    let user = Uuid::now_v7();
    let mut store = open(&dir, "a.db", user);
    let w = store.create(&workplace("Plantation Kouamé")).unwrap();
    let v = store.create(&visit(&w, user)).unwrap();
    let c = store.create(&child("Adjoa Kouamé", user)).unwrap();
    store.close().unwrap();

    let store = open(&dir, "a.db", user);
    let w2: Workplace = store.get(w.id).unwrap();
    assert_eq!(w2, w);
    let v2: Visit = store.get(v.id).unwrap();
    assert_eq!(v2, v);
    assert_eq!(v2.started_at.offset().local_minus_utc(), 0);
    let c2: ChildCase = store.get(c.id).unwrap();
    assert_eq!(c2.name, "Adjoa Kouamé");
    assert_eq!(
        c2.classification.as_ref().unwrap().outcome,
        ClassificationOutcome::ChildLabour
    );
    assert_eq!(
        c2.classification.as_ref().unwrap().rule_set,
        "ilo-default@1"
    );
    assert!(matches!(
        store.get::<Visit>(w.id),
        Err(Error::WrongKind { .. })
    ));
    assert!(matches!(
        store.get::<Visit>(Uuid::now_v7()),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn time_zone_offsets_are_kept() {
    let dir = TempDir::new().unwrap();
    let user = Uuid::now_v7();
    let mut store = open(&dir, "a.db", user);
    let w = store.create(&workplace("Atelier")).unwrap();
    let mut v = visit(&w, user);
    let plus_one = FixedOffset::east_opt(3600).unwrap();
    v.started_at = plus_one.with_ymd_and_hms(2026, 6, 1, 8, 30, 0).unwrap();
    v.ended_at = Some(plus_one.with_ymd_and_hms(2026, 6, 1, 10, 0, 0).unwrap());
    let v = store.create(&v).unwrap();
    let read: Visit = store.get(v.id).unwrap();
    assert_eq!(read.started_at.offset().local_minus_utc(), 3600);
    assert_eq!(read.started_at, v.started_at);

    // The zones on Earth run from UTC-12 to UTC+14, both taken; an offset past them (an
    // app's arithmetic gone wrong) would date the visit a day no one there lived.
    for hours in [-12, 14] {
        let zone = FixedOffset::east_opt(hours * 3600).unwrap();
        let mut v = visit(&w, user);
        v.started_at = zone.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap();
        v.ended_at = Some(zone.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap());
        store.create(&v).unwrap();
    }
    let past_any = |seconds| FixedOffset::east_opt(seconds).unwrap();
    for (field, seconds) in [
        ("started_at", -12 * 3600 - 60),
        ("ended_at", 14 * 3600 + 60),
    ] {
        let mut v = visit(&w, user);
        v.started_at = past_any(if field == "started_at" { seconds } else { 0 })
            .with_ymd_and_hms(2026, 6, 1, 8, 0, 0)
            .unwrap();
        v.ended_at = Some(
            past_any(seconds)
                .with_ymd_and_hms(2026, 6, 2, 9, 0, 0)
                .unwrap(),
        );
        assert_eq!(validation_field(store.create(&v).unwrap_err()), field);
    }
}

#[test]
fn invalid_records_name_the_field_and_store_nothing() {
    let dir = TempDir::new().unwrap();
    let user = Uuid::now_v7();
    let mut store = open(&dir, "a.db", user);
    let w = store.create(&workplace("Mine d'or")).unwrap();

    let mut bad = visit(&w, user);
    bad.ended_at = Some(at(2026, 3, 2, 8));
    assert_eq!(
        validation_field(store.create(&bad).unwrap_err()),
        "ended_at"
    );

    // The children a visit identified are child cases: not a workplace, not an empty id.
    let mut bad = visit(&w, user);
    bad.children_identified.insert(w.id);
    assert_eq!(
        validation_field(store.create(&bad).unwrap_err()),
        "children_identified"
    );
    let mut bad = visit(&w, user);
    bad.children_identified.insert(Uuid::nil());
    assert_eq!(
        validation_field(store.create(&bad).unwrap_err()),
        "children_identified"
    );

    // A year typed as 0025, or an empty date picker's 0000-01-01: no event is that old.
    let mut bad = visit(&w, user);
    bad.started_at = at(25, 3, 2, 8);
    bad.ended_at = None;
    assert_eq!(
        validation_field(store.create(&bad).unwrap_err()),
        "started_at"
    );
    let mut bad = child("Aya", user);
    bad.identified_on = date(0, 1, 1);
    assert_eq!(
        validation_field(store.create(&bad).unwrap_err()),
        "identified_on"
    );
    let mut bad = child("Aya", user);
    bad.identified_on = date(9999, 12, 31);
    assert_eq!(
        validation_field(store.create(&bad).unwrap_err()),
        "identified_on"
    );
    let mut bad = child("Aya", user);
    bad.date_of_birth = Some(date(1899, 12, 31));
    assert_eq!(
        validation_field(store.create(&bad).unwrap_err()),
        "date_of_birth"
    );
    // A follow-up's plan, though it may fall after today, is a day of the calendar too.
    let mut bad = child("Aya", user);
    let planned = uuid::Uuid::now_v7();
    bad.followups.insert(
        planned,
        FollowUp::new(
            bad.identified_on,
            FollowUpSituation::AtRisk,
            Some(date(9999, 12, 31)),
        ),
    );
    assert_eq!(
        validation_field(store.create(&bad).unwrap_err()),
        format!("followups.{planned}.next_due")
    );

    let mut bad = visit(&w, user);
    bad.checklist.answers.insert("LI99".into(), Answer::Yes);
    assert_eq!(
        validation_field(store.create(&bad).unwrap_err()),
        "checklist.answers.LI99"
    );

    let mut bad = visit(&w, user);
    bad.gps = Some(GeoPoint {
        latitude: 91.0,
        longitude: 0.0,
        accuracy_m: None,
    });
    assert_eq!(
        validation_field(store.create(&bad).unwrap_err()),
        "gps.latitude"
    );

    let mut bad = visit(&w, user);
    bad.gps = Some(GeoPoint {
        latitude: f64::NAN,
        longitude: 0.0,
        accuracy_m: None,
    });
    assert_eq!(
        validation_field(store.create(&bad).unwrap_err()),
        "gps.latitude"
    );

    assert_eq!(
        validation_field(store.create(&workplace("  ")).unwrap_err()),
        "name"
    );

    let mut bad = child("Yao", user);
    bad.date_of_birth = Some(date(2000, 1, 1));
    assert_eq!(
        validation_field(store.create(&bad).unwrap_err()),
        "date_of_birth"
    );

    let mut bad = child("Yao", user);
    bad.date_of_birth = None;
    bad.estimated_age = Some(18);
    assert_eq!(
        validation_field(store.create(&bad).unwrap_err()),
        "estimated_age"
    );
    // Beside a date of birth too: the estimate is shown and exported all the same.
    for age in [-1, 18, 400] {
        let mut bad = child("Yao", user);
        bad.date_of_birth = Some(date(2014, 3, 7));
        bad.estimated_age = Some(age);
        assert_eq!(
            validation_field(store.create(&bad).unwrap_err()),
            "estimated_age"
        );
    }

    let mut bad = child("Yao", user);
    bad.hazards.insert("juggling".into());
    assert_eq!(
        validation_field(store.create(&bad).unwrap_err()),
        "hazards.juggling"
    );

    // Each collection is bounded, named by its field (a cooperative's every member fits).
    use vigie_core::domain::validation::{
        MAX_BUYERS_OR_SUPPLIERS, MAX_CHILDREN_PER_VISIT, MAX_FOLLOWUPS, MAX_MERGED_CASES,
        MAX_REFERRALS, MAX_TASKS,
    };
    let names = |n: usize| {
        (0..n)
            .map(|i| format!("Coopérative {i}"))
            .collect::<BTreeSet<_>>()
    };
    let mut w_big = workplace("Coopérative Kouamé");
    w_big.buyers = names(MAX_BUYERS_OR_SUPPLIERS);
    w_big.suppliers = names(MAX_BUYERS_OR_SUPPLIERS);
    let kept = store.create(&w_big).unwrap();
    let mut over = kept.clone();
    over.suppliers.insert("Une de trop".into());
    assert_eq!(
        validation_field(store.update(&over).unwrap_err()),
        "suppliers"
    );
    let mut over = workplace("Coopérative Yao");
    over.buyers = names(MAX_BUYERS_OR_SUPPLIERS + 1);
    assert_eq!(validation_field(store.create(&over).unwrap_err()), "buyers");
    let mut over = visit(&w, user);
    over.children_identified = (0..=MAX_CHILDREN_PER_VISIT)
        .map(|_| Uuid::now_v7())
        .collect();
    assert_eq!(
        validation_field(store.create(&over).unwrap_err()),
        "children_identified"
    );
    let mut over = child("Yao", user);
    over.tasks = (0..=MAX_TASKS).map(|i| format!("tâche {i}")).collect();
    assert_eq!(validation_field(store.create(&over).unwrap_err()), "tasks");
    let on = date(2026, 3, 2);
    let mut over = child("Yao", user);
    over.referrals = (0..=MAX_REFERRALS)
        .map(|_| {
            (
                Uuid::now_v7(),
                Referral::new(ServiceKind::Education, "École", on),
            )
        })
        .collect();
    assert_eq!(
        validation_field(store.create(&over).unwrap_err()),
        "referrals"
    );
    let mut over = child("Yao", user);
    over.followups = (0..=MAX_FOLLOWUPS)
        .map(|_| {
            (
                Uuid::now_v7(),
                FollowUp::new(on, FollowUpSituation::InSchool, None),
            )
        })
        .collect();
    assert_eq!(
        validation_field(store.create(&over).unwrap_err()),
        "followups"
    );
    let mut over = child("Yao", user);
    over.merged_from = (0..=MAX_MERGED_CASES).map(|_| Uuid::now_v7()).collect();
    assert_eq!(
        validation_field(store.create(&over).unwrap_err()),
        "merged_from"
    );
    assert_eq!(store.count(RecordKind::Workplace).unwrap(), 2);

    assert_eq!(store.count(RecordKind::Visit).unwrap(), 0);
    assert_eq!(store.count(RecordKind::ChildCase).unwrap(), 0);

    // An invalid update leaves the stored record as it was.
    let v = store.create(&visit(&w, user)).unwrap();
    let mut edit = v.clone();
    edit.ended_at = Some(at(2026, 3, 1, 8));
    assert!(store.update(&edit).is_err());
    assert_eq!(store.get::<Visit>(v.id).unwrap(), v);
    assert_eq!(store.history(v.id).unwrap().len(), 1);
}

#[test]
fn names_and_one_line_fields_are_short_plain_lines() {
    let dir = TempDir::new().unwrap();
    let user = Uuid::now_v7();
    let mut store = open(&dir, "a.db", user);
    let refusal = |store: &mut Store, bad: &ChildCase| {
        let e = store.create(bad).unwrap_err();
        let text = e.to_string();
        assert!(!text.contains("Aya"), "no personal data: {text}");
        validation_field(e)
    };
    // At the bound, in any script, a case is taken.
    let long = "Aya ".repeat(30);
    assert_eq!(long.chars().count(), 120);
    store.create(&child(&long, user)).unwrap();
    // An accent typed apart from its letter counts with it, as it shows.
    let decomposed = "e\u{301}".repeat(120);
    store.create(&child(&decomposed, user)).unwrap();
    let mut fine = child("Aya Kouamé", user);
    fine.case_code = "CI-R1-D1-C01-000042".into();
    fine.guardian = "Kouassi N'Guessan".into();
    fine.household = "CI-R1-D1-C01-M0042".into();
    fine.activity = "récolte et écabossage du cacao".into();
    fine.tasks = ["transport d'eau".to_string(), "désherbage".to_string()].into();
    store.create(&fine).unwrap();
    // A joiner inside a name shapes its script.
    store.create(&child("क्\u{200d}ष", user)).unwrap();

    // Too long for any list, on two lines, with a NUL, or displayed reversed.
    for name in [
        "Aya ".repeat(2500),
        format!("{long}x"),
        "Aya\nKouamé".into(),
        "Aya\0".into(),
        "\u{202e}ayA\u{202c} Kouamé".into(),
        "Aya \u{2067}Kouamé".into(),
        // A line separator, and characters no one sees (a byte order mark, a tag).
        "Aya\u{2028}Kouamé".into(),
        "\u{feff}Aya Kouamé".into(),
        "Aya Kouamé\u{e0041}".into(),
        // Nothing a list would show, nor a search find.
        "\u{200d}".into(),
        "\u{200b}\u{200b}".into(),
        " \u{2060}\u{00ad} ".into(),
        "\u{3164}".into(),
        // Noncharacters, drawn as nothing.
        "\u{ffff}".into(),
        "\u{fdd0}\u{10ffff}".into(),
        // An accent with no letter under it.
        "\u{0301}".into(),
    ] {
        assert_eq!(refusal(&mut store, &child(&name, user)), "name");
    }
    for (field, value) in [
        ("guardian", "Aya\r\nKouamé".to_string()),
        ("guardian", "\u{200b}\u{200b}".to_string()),
        // Spaces alone look empty, and an export counted the guardian as recorded.
        ("guardian", "   ".to_string()),
        ("guardian", "\u{a0}".to_string()),
        // A task that shows nothing, in a list of them (format characters of other planes
        // too).
        ("tasks", "\u{200b}".to_string()),
        ("tasks", "\u{3164}".to_string()),
        ("tasks", "\u{1d173}".to_string()),
        ("tasks", "\u{1bca0}\u{34f}".to_string()),
        ("guardian", "\u{13430}".to_string()),
        ("household", "Aya ".repeat(31)),
        ("activity", "Aya\u{202d}".into()),
    ] {
        let mut bad = child("Aya", user);
        match field {
            "guardian" => bad.guardian = value,
            "tasks" => bad.tasks = [value].into(),
            "household" => bad.household = value,
            _ => bad.activity = value,
        }
        assert_eq!(refusal(&mut store, &bad), field);
    }
    // A case code is a code: printable ASCII, no space, no line break.
    for code in [
        "",
        "CI-0001\nAya",
        "CI 0001",
        "CI-0001\u{202e}",
        &"C".repeat(65),
    ] {
        let mut bad = child("Aya", user);
        bad.case_code = code.into();
        assert_eq!(refusal(&mut store, &bad), "case_code", "{code:?}");
    }
    // No reference data lists tasks: each is a short line, and the field is named without it.
    for task in ["", " ", "Aya\nKouamé", "Aya\u{2066}", &"Aya ".repeat(17)] {
        let mut bad = child("Aya", user);
        bad.tasks = [task.to_string()].into();
        assert_eq!(refusal(&mut store, &bad), "tasks", "{task:?}");
    }
    let mut bad = child("Aya", user);
    let referral = Uuid::now_v7();
    bad.referrals.insert(
        referral,
        Referral::new(ServiceKind::Education, "Aya\nKouamé", date(2026, 3, 3)),
    );
    assert_eq!(
        refusal(&mut store, &bad),
        format!("referrals.{referral}.provider")
    );
    // Free text keeps its writer's lines and tabs, and no other control: a NUL or an escape
    // would not reach a spreadsheet as typed, and an override shows the text reversed.
    let mut noted = child("Aya", user);
    noted.notes = "Ligne 1\nLigne 2\r\n\tpayé 500 F".into();
    let noted = store.create(&noted).unwrap();
    assert_eq!(noted.notes, "Ligne 1\nLigne 2\r\n\tpayé 500 F");
    for notes in [
        "payé 500\0F",
        "le\u{1b}[2J soir",
        "\u{202e}esrever",
        "\u{feff}a",
    ] {
        let mut bad = child("Aya", user);
        bad.notes = notes.into();
        assert_eq!(refusal(&mut store, &bad), "notes", "{notes:?}");
    }
    let mut bad = child("Aya", user);
    let follow_up = Uuid::now_v7();
    let mut seen = FollowUp::new(date(2026, 3, 3), FollowUpSituation::InSchool, None);
    seen.notes = "vu\u{7}".into();
    bad.followups.insert(follow_up, seen);
    assert_eq!(
        refusal(&mut store, &bad),
        format!("followups.{follow_up}.notes")
    );
    assert_eq!(store.count(RecordKind::ChildCase).unwrap(), 5);

    // A workplace's name, owner and trading partners alike.
    assert_eq!(
        validation_field(store.create(&workplace(&"Aya ".repeat(40))).unwrap_err()),
        "name"
    );
    let mut bad = workplace("Plantation");
    bad.owner_name = "\u{202e}ayA".into();
    assert_eq!(
        validation_field(store.create(&bad).unwrap_err()),
        "owner_name"
    );
    let mut bad = workplace("Plantation");
    bad.owner_contact = "07 00 00 00\n00".into();
    assert_eq!(
        validation_field(store.create(&bad).unwrap_err()),
        "owner_contact"
    );
    // What is wrong, said: the character the writer cannot see, by its position, else the
    // length (the same words for both were no help to correct either).
    for (name, rule, said) in [
        (
            "Aya\u{feff} Kouamé",
            "must be on one line, without control or text-direction characters: the first is \
             character 4",
            "Nom : doit tenir sur une ligne, sans caractère de contrôle ni de sens d'écriture : \
             le premier est le caractère 4",
        ),
        (
            &*"Aya ".repeat(40),
            "must be at most 120 characters on one line",
            "Nom : doit tenir sur une ligne d'au plus 120 caractères",
        ),
    ] {
        match store.create(&workplace(name)).unwrap_err() {
            Error::Validation(e) => {
                assert_eq!(e.rule, rule);
                assert_eq!(
                    vigie_core::messages::field_refusal(&e.field, &e.rule, "fr"),
                    said
                );
            }
            other => panic!("{other:?}"),
        }
    }
    let mut bad = workplace("Plantation");
    bad.buyers = ["Coopérative\u{0}".to_string()].into();
    assert_eq!(validation_field(store.create(&bad).unwrap_err()), "buyers");
    let mut bad = workplace("Plantation");
    bad.suppliers = ["".to_string()].into();
    assert_eq!(
        validation_field(store.create(&bad).unwrap_err()),
        "suppliers"
    );
    let mut bad = workplace("Plantation");
    bad.notes = "Chef absent\u{0}".into();
    assert_eq!(validation_field(store.create(&bad).unwrap_err()), "notes");
    assert_eq!(store.count(RecordKind::Workplace).unwrap(), 0);

    // A visit's workforce within what a workplace can employ.
    let place = store.create(&workplace("Plantation")).unwrap();
    let mut bad = visit(&place, user);
    bad.workforce.female.under_12 = i32::MAX;
    assert_eq!(
        validation_field(store.create(&bad).unwrap_err()),
        "workforce.female.under_12"
    );
    let mut fine = visit(&place, user);
    fine.workforce.male.adults = vigie_core::domain::validation::MAX_WORKFORCE_BAND;
    store.create(&fine).unwrap();
    let mut bad = visit(&place, user);
    bad.findings = "Deux enfants\u{202e}".into();
    assert_eq!(
        validation_field(store.create(&bad).unwrap_err()),
        "findings"
    );
    let mut bad = visit(&place, user);
    bad.forced_labour.insert(
        ForcedLabourIndicator::WithholdingOfWages,
        "retenue\u{1b}".into(),
    );
    assert_eq!(
        validation_field(store.create(&bad).unwrap_err()),
        "forced_labour.withholding_of_wages"
    );
}

#[test]
fn error_text_carries_no_personal_data() {
    let dir = TempDir::new().unwrap();
    let user = Uuid::now_v7();
    let mut store = open(&dir, "a.db", user);
    let mut bad = child("Aya Traoré", user);
    bad.estimated_age = Some(40);
    bad.date_of_birth = None;
    let text = store.create(&bad).unwrap_err().to_string();
    assert!(!text.contains("Aya") && !text.contains("Traoré"), "{text}");
    let mut bad = child("Aya Traoré", user);
    bad.hazards.insert("Aya Traoré".into());
    let text = store.create(&bad).unwrap_err().to_string();
    assert!(!text.contains("Aya"), "{text}");
}

#[test]
fn updates_write_only_what_changed_and_history_says_who_and_what() {
    let dir = TempDir::new().unwrap();
    let monitor = Uuid::now_v7();
    let mut store = open(&dir, "a.db", monitor);
    let w = store.create(&workplace("Champ")).unwrap();
    let v = store.create(&visit(&w, monitor)).unwrap();

    let mut edit = v.clone();
    edit.status = VisitStatus::Validated;
    let v2 = store.update(&edit).unwrap();
    assert_eq!(v2.status, VisitStatus::Validated);
    assert_ne!(v2.version, v.version);

    // Writing the same record again changes nothing.
    let v3 = store.update(&v2).unwrap();
    assert_eq!(v3.version, v2.version);

    let history = store.history(v.id).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].fields, vec!["status".to_string()]);
    let author = history[1].author.unwrap();
    assert_eq!(author.user, monitor);
    assert_eq!(author.device, store.device_id());
    assert!(history[1].time.is_some());
    assert!(history[0].fields.contains(&"findings".to_string()));
}

/// An app that saves a form again from the object it first read (each save an edit at that
/// older version, with this device's own saves since): the user's saves follow one another.
/// Each made a branch of its own, and the user's own values showed as a conflict to settle.
/// What a save left as it read it keeps what an earlier save set; what it changed, it sets.
#[test]
fn a_form_saved_again_from_the_version_it_read_makes_no_conflict_of_its_own_values() {
    let dir = TempDir::new().unwrap();
    let monitor = Uuid::now_v7();
    let mut store = open(&dir, "a.db", monitor);
    let read = store.create(&child("Awa Koné", monitor)).unwrap();
    let mut form = read.clone();
    form.hours_per_week = 30;
    store.update(&form).unwrap();
    form.guardian = "Koffi Brou".into();
    store.update(&form).unwrap();
    form.hours_per_week = 25;
    store.update(&form).unwrap();
    // Another form, opened on the first version too, changes the household only.
    let mut other = read.clone();
    other.household = "Ménage Koné".into();
    let saved = store.update(&other).unwrap();
    assert!(store.conflicts(read.id).unwrap().is_empty());
    assert_eq!(
        (
            saved.hours_per_week,
            saved.guardian.as_str(),
            saved.household.as_str()
        ),
        (25, "Koffi Brou", "Ménage Koné")
    );
    // One branch: each save came after the one before it.
    let history = store.history(read.id).unwrap();
    assert_eq!(history.len(), 5, "{history:?}");
    // The form's latest save stands, a value set back to one it saved before included.
    for notes in ["Vue au champ", "Vue à l'école", "Vue au champ"] {
        form.notes = notes.into();
        store.update(&form).unwrap();
    }
    assert_eq!(
        store.get::<ChildCase>(read.id).unwrap().notes,
        "Vue au champ"
    );

    // A colleague's edit arrives (another phone set the guardian and the school): the same
    // stale form, saved twice more, conflicts with it where both set a field (a real
    // conflict, kept), never with its own earlier saves.
    let mut colleague = open(&dir, "b.db", Uuid::now_v7());
    colleague
        .merge_document(read.id, &store.export_document(read.id).unwrap())
        .unwrap();
    let mut theirs: ChildCase = colleague.get(read.id).unwrap();
    theirs.guardian = "Awa Traoré".into();
    theirs.school = SchoolStatus::DroppedOut;
    colleague.update(&theirs).unwrap();
    store
        .merge_document(read.id, &colleague.export_document(read.id).unwrap())
        .unwrap();
    form.guardian = "Yao Koffi".into();
    store.update(&form).unwrap();
    form.hours_per_week = 35;
    let saved = store.update(&form).unwrap();
    let conflicts: Vec<String> = store
        .conflicts(read.id)
        .unwrap()
        .into_iter()
        .map(|c| c.field)
        .collect();
    assert_eq!(conflicts, vec!["guardian".to_string()]);
    assert_eq!(
        (saved.hours_per_week, saved.school, saved.household.as_str()),
        (35, SchoolStatus::DroppedOut, "Ménage Koné")
    );
}

#[test]
fn concurrent_edits_merge_and_real_conflicts_are_kept_until_resolved() {
    let dir = TempDir::new().unwrap();
    let (monitor, supervisor) = (Uuid::now_v7(), Uuid::now_v7());
    let mut phone = open(&dir, "phone.db", monitor);
    let mut tablet = open(&dir, "tablet.db", supervisor);

    let w = phone.create(&workplace("Carrière")).unwrap();
    let v = phone.create(&visit(&w, monitor)).unwrap();
    tablet
        .merge_document(w.id, &phone.export_document(w.id).unwrap())
        .unwrap();
    tablet
        .merge_document(v.id, &phone.export_document(v.id).unwrap())
        .unwrap();
    assert_eq!(tablet.get::<Visit>(v.id).unwrap(), v);

    // Offline: both edit the findings text, both set the status, the phone adds a checklist answer.
    let mut on_phone = v.clone();
    on_phone.findings = format!("{} Un enfant de 11 ans.", v.findings);
    on_phone.status = VisitStatus::Draft;
    on_phone.checklist.answers.insert("LI02".into(), Answer::No);
    phone.update(&on_phone).unwrap();
    let mut on_tablet = v.clone();
    on_tablet.findings = format!("Constat: {}", v.findings);
    on_tablet.status = VisitStatus::Returned;
    on_tablet.review_comment = "Préciser l'âge.".into();
    tablet.update(&on_tablet).unwrap();

    // Exchange in both directions; applying the same bytes twice changes nothing.
    let from_phone = phone.export_document(v.id).unwrap();
    let from_tablet = tablet.export_document(v.id).unwrap();
    assert!(tablet.merge_document(v.id, &from_phone).unwrap());
    assert!(!tablet.merge_document(v.id, &from_phone).unwrap());
    assert!(phone.merge_document(v.id, &from_tablet).unwrap());

    let a: Visit = phone.get(v.id).unwrap();
    let b: Visit = tablet.get(v.id).unwrap();
    assert_eq!(a, b);
    assert_eq!(
        a.findings,
        format!("Constat: {} Un enfant de 11 ans.", v.findings),
        "text edits merge"
    );
    assert_eq!(a.checklist.answers.get("LI02"), Some(&Answer::No));
    assert_eq!(a.review_comment, "Préciser l'âge.");

    let conflicts = phone.conflicts(v.id).unwrap();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!(conflicts[0].field(), "status");
    let values: BTreeSet<String> = conflicts[0]
        .values
        .iter()
        .map(|c| c.value.to_string())
        .collect();
    assert_eq!(
        values,
        BTreeSet::from(["\"draft\"".to_string(), "\"returned\"".to_string()])
    );
    let users: BTreeSet<Uuid> = conflicts[0]
        .values
        .iter()
        .map(|c| c.author.unwrap().user)
        .collect();
    assert_eq!(users, BTreeSet::from([monitor, supervisor]));
    assert_eq!(tablet.conflicts(v.id).unwrap(), conflicts);

    // Resolving is an ordinary edit that syncs.
    assert!(matches!(
        tablet.resolve_conflict(v.id, &["status".into()], &json!("bogus")),
        Err(Error::Validation(v)) if v.field == "status"
    ));
    // A list is no field's value: said so, not a conflict "settled meanwhile" still open.
    assert!(matches!(
        tablet.resolve_conflict(v.id, &["status".into()], &json!(["returned"])),
        Err(Error::Validation(v)) if v.field == "status" && v.rule.contains("not a list")
    ));
    // The path is named when it is a field of the record, else not repeated: it may be
    // anything typed.
    match tablet.resolve_conflict(v.id, &["findings".into()], &json!("x")) {
        Err(e @ Error::NoSuchConflict { .. }) => {
            assert_eq!(
                e.to_string(),
                format!("no conflict at findings in {}", v.id)
            )
        }
        other => panic!("{other:?}"),
    }
    for path in [
        vec!["Aya Traoré".to_string()],
        vec!["Aya".to_string()],
        vec!["status".to_string(), "Aya".to_string()],
        vec![],
    ] {
        match tablet.resolve_conflict(v.id, &path, &json!("x")) {
            Err(e @ Error::NoSuchConflict { .. }) => assert_eq!(
                e.to_string(),
                format!("no conflict at the field given in {}", v.id)
            ),
            other => panic!("{other:?}"),
        }
    }
    tablet
        .resolve_conflict(v.id, &["status".into()], &json!("returned"))
        .unwrap();
    assert!(tablet.conflicts(v.id).unwrap().is_empty());
    phone
        .merge_document(v.id, &tablet.export_document(v.id).unwrap())
        .unwrap();
    assert!(phone.conflicts(v.id).unwrap().is_empty());
    assert_eq!(
        phone.get::<Visit>(v.id).unwrap().status,
        VisitStatus::Returned
    );
    assert_eq!(
        phone.get::<Visit>(v.id).unwrap(),
        tablet.get::<Visit>(v.id).unwrap()
    );
}

/// Two people settle one conflict apart, one keeping the value shown, the other the value
/// that lost: their choices are a conflict again, whichever was shown. Automerge wrote the
/// value shown as a mere delete of the other, and the other choice then won unseen.
#[test]
fn two_resolutions_of_one_conflict_made_apart_are_a_conflict_again() {
    let dir = TempDir::new().unwrap();
    let (monitor, supervisor) = (Uuid::now_v7(), Uuid::now_v7());
    let mut phone = open(&dir, "phone.db", monitor);
    let mut tablet = open(&dir, "tablet.db", supervisor);
    let c = phone.create(&child("Koffi", monitor)).unwrap();
    tablet
        .merge_document(c.id, &phone.export_document(c.id).unwrap())
        .unwrap();
    let mut on_phone = phone.get::<ChildCase>(c.id).unwrap();
    on_phone.hours_per_week = 11;
    phone.update(&on_phone).unwrap();
    let mut on_tablet = tablet.get::<ChildCase>(c.id).unwrap();
    on_tablet.hours_per_week = 16;
    tablet.update(&on_tablet).unwrap();
    let exchange = |a: &mut Store, b: &mut Store| {
        let (from_a, from_b) = (
            a.export_document(c.id).unwrap(),
            b.export_document(c.id).unwrap(),
        );
        a.merge_document(c.id, &from_b).unwrap();
        b.merge_document(c.id, &from_a).unwrap();
    };
    exchange(&mut phone, &mut tablet);
    assert_eq!(phone.conflicts(c.id).unwrap().len(), 1);

    let shown = phone.get::<ChildCase>(c.id).unwrap().hours_per_week;
    let lost = if shown == 11 { 16 } else { 11 };
    tablet
        .resolve_conflict(c.id, &["hours_per_week".into()], &json!(shown))
        .unwrap();
    phone
        .resolve_conflict(c.id, &["hours_per_week".into()], &json!(lost))
        .unwrap();
    assert!(tablet.conflicts(c.id).unwrap().is_empty());
    exchange(&mut phone, &mut tablet);

    for store in [&phone, &tablet] {
        let conflicts = store.conflicts(c.id).unwrap();
        assert_eq!(conflicts.len(), 1, "{conflicts:?}");
        let chosen: BTreeSet<(String, Uuid)> = conflicts[0]
            .values
            .iter()
            .map(|v| (v.value.to_string(), v.author.unwrap().user))
            .collect();
        assert_eq!(
            chosen,
            BTreeSet::from([(shown.to_string(), supervisor), (lost.to_string(), monitor)])
        );
    }
    // The same value chosen apart is no conflict.
    tablet
        .resolve_conflict(c.id, &["hours_per_week".into()], &json!(lost))
        .unwrap();
    phone
        .resolve_conflict(c.id, &["hours_per_week".into()], &json!(lost))
        .unwrap();
    exchange(&mut phone, &mut tablet);
    assert!(phone.conflicts(c.id).unwrap().is_empty());
    assert_eq!(phone.get::<ChildCase>(c.id).unwrap().hours_per_week, lost);
}

#[test]
fn an_update_from_a_stale_version_does_not_undo_what_arrived_meanwhile() {
    let dir = TempDir::new().unwrap();
    let user = Uuid::now_v7();
    let mut phone = open(&dir, "phone.db", user);
    let mut tablet = open(&dir, "tablet.db", Uuid::now_v7());
    let c = phone.create(&child("Koffi", user)).unwrap();
    tablet
        .merge_document(c.id, &phone.export_document(c.id).unwrap())
        .unwrap();

    // The form on the phone was opened before the supervisor's change arrived.
    let stale = phone.get::<ChildCase>(c.id).unwrap();
    let mut remote = tablet.get::<ChildCase>(c.id).unwrap();
    remote.school = SchoolStatus::Attending;
    tablet.update(&remote).unwrap();
    phone
        .merge_document(c.id, &tablet.export_document(c.id).unwrap())
        .unwrap();

    let mut edit = stale;
    edit.hours_per_week = 5;
    let stored = phone.update(&edit).unwrap();
    assert_eq!(
        stored.school,
        SchoolStatus::Attending,
        "the merged change survives"
    );
    assert_eq!(stored.hours_per_week, 5);
    assert!(phone.conflicts(c.id).unwrap().is_empty());

    // A record with no version (built from a form, not read) would set every field as if read
    // now, undoing the school status unseen: refused on the field, nothing written.
    let mut unread = edit.clone();
    unread.version = Version::default();
    unread.school = SchoolStatus::DroppedOut;
    unread.notes = "from a form".into();
    assert_eq!(
        validation_field(phone.update(&unread).unwrap_err()),
        "version"
    );
    let kept = phone.get::<ChildCase>(c.id).unwrap();
    assert_eq!(kept.school, SchoolStatus::Attending);
    assert_eq!(kept.notes, stored.notes);
}

#[test]
fn referrals_and_follow_ups_added_on_two_devices_are_all_kept() {
    let dir = TempDir::new().unwrap();
    let user = Uuid::now_v7();
    let mut a = open(&dir, "a.db", user);
    let mut b = open(&dir, "b.db", Uuid::now_v7());
    let c = a.create(&child("Aya", user)).unwrap();
    b.merge_document(c.id, &a.export_document(c.id).unwrap())
        .unwrap();

    let mut on_a = c.clone();
    on_a.referrals.insert(
        Uuid::now_v7(),
        Referral {
            service: ServiceKind::Education,
            provider: "École de Gagnoa".into(),
            date: date(2026, 3, 10),
            outcome: String::new(),
        },
    );
    on_a.hazards.insert("heavy_loads".into());
    a.update(&on_a).unwrap();
    let mut on_b = c.clone();
    on_b.followups.insert(
        Uuid::now_v7(),
        FollowUp {
            date: date(2026, 4, 1),
            situation: FollowUpSituation::InSchool,
            notes: "Va à l'école.".into(),
            next_due: Some(date(2026, 7, 1)),
        },
    );
    on_b.hazards.insert("sharp_tools".into());
    b.update(&on_b).unwrap();

    a.merge_document(c.id, &b.export_document(c.id).unwrap())
        .unwrap();
    b.merge_document(c.id, &a.export_document(c.id).unwrap())
        .unwrap();
    let merged: ChildCase = a.get(c.id).unwrap();
    assert_eq!(merged, b.get::<ChildCase>(c.id).unwrap());
    assert_eq!(merged.referrals.len(), 1);
    assert_eq!(merged.followups.len(), 1);
    assert_eq!(
        merged.hazards,
        BTreeSet::from(["heavy_loads".to_string(), "sharp_tools".to_string()])
    );
    assert!(a.conflicts(c.id).unwrap().is_empty());

    // The due list follows the merged follow-up.
    let due = a
        .follow_ups_due(
            Some(AreaFilter::District("CI-R1-D1".into())),
            None,
            date(2026, 8, 1),
            Page::first(10),
        )
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].id, due[0].due), (c.id, date(2026, 7, 1)));
    assert!(
        a.follow_ups_due(None, None, date(2026, 7, 1), Page::first(10))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn queries_filter_and_page_from_the_indexes() {
    let dir = TempDir::new().unwrap();
    let user = Uuid::now_v7();
    let other = Uuid::now_v7();
    let mut store = open(&dir, "a.db", user);
    let w1 = store.create(&workplace("Plantation Aké")).unwrap();
    let mut w2 = workplace("Orpaillage Koné");
    w2.sector = "mining".into();
    w2.location.area = Area::new("CI", "CI-R1", "CI-R1-D2", "CI-R1-D2-C05");
    let w2 = store.create(&w2).unwrap();
    for day in 1..=12 {
        let (w, visitor) = if day % 3 == 0 {
            (&w2, other)
        } else {
            (&w1, user)
        };
        let mut v = visit(w, visitor);
        v.started_at = at(2026, 5, day, 8);
        v.ended_at = None;
        if day % 4 == 0 {
            v.status = VisitStatus::Draft;
        }
        store.create(&v).unwrap();
    }
    let district = |d: &str| Some(AreaFilter::District(d.into()));
    let q = VisitQuery {
        area: district("CI-R1-D1"),
        status: Some(VisitStatus::Submitted),
        ..Default::default()
    };
    let page1 = store.visits(&q, Page::first(3)).unwrap();
    let page2 = store.visits(&q, Page::first(3).next()).unwrap();
    let page3 = store.visits(&q, Page::first(3).next().next()).unwrap();
    // Days 1..12 not divisible by 3 (8 days), minus drafts on days 4 and 8: 6 visits.
    assert_eq!((page1.len(), page2.len(), page3.len()), (3, 3, 0));
    assert!(page1[0].started_at > page1[2].started_at, "newest first");
    assert!(
        page1
            .iter()
            .chain(&page2)
            .all(|s| s.district == "CI-R1-D1" && s.status == VisitStatus::Submitted)
    );

    let by_visitor = store
        .visits(
            &VisitQuery {
                visitor_id: Some(other),
                ..Default::default()
            },
            Page::first(50),
        )
        .unwrap();
    assert_eq!(by_visitor.len(), 4);
    let by_workplace = store
        .visits(
            &VisitQuery {
                workplace_id: Some(w2.id),
                ..Default::default()
            },
            Page::first(50),
        )
        .unwrap();
    assert_eq!(by_workplace.len(), 4);
    let range = VisitQuery {
        started_from: Some(at(2026, 5, 3, 0).to_utc()),
        started_before: Some(at(2026, 5, 6, 0).to_utc()),
        ..Default::default()
    };
    assert_eq!(store.visits(&range, Page::first(50)).unwrap().len(), 3);

    let mining = store
        .workplaces(
            &WorkplaceQuery {
                sector: Some("mining".into()),
                ..Default::default()
            },
            Page::first(10),
        )
        .unwrap();
    assert_eq!(mining.iter().map(|w| w.id).collect::<Vec<_>>(), vec![w2.id]);

    let mut hazardous = child("Kouassi", user);
    hazardous.hazards.insert("pesticides".into());
    let hazardous = store.create(&hazardous).unwrap();
    store.create(&child("Ama", user)).unwrap();
    let q = ChildCaseQuery {
        area: district("CI-R1-D1"),
        classification: Some(ClassificationOutcome::HazardousChildLabour),
        ..Default::default()
    };
    let found = store.child_cases(&q, Page::first(10)).unwrap();
    assert_eq!(
        found.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![hazardous.id]
    );
    assert_eq!(found[0].age, Some(11));
}

/// Workplaces are listed as a person reads their names: letter case and accents aside, and a
/// name typed with decomposed accents beside the same name typed with composed ones.
#[test]
fn workplaces_are_listed_in_reading_order() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir, "a.db", Uuid::now_v7());
    for name in [
        "Zoé",
        "École de Yopougon",
        "abri",
        "E\u{301}lodie",
        "Élodie",
        "zèbre",
        "Amani",
        "Œuvre",
    ] {
        store.create(&workplace(name)).unwrap();
    }
    let listed: Vec<String> = store
        .workplaces(&WorkplaceQuery::default(), Page::first(20))
        .unwrap()
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(
        listed,
        [
            "abri",
            "Amani",
            "École de Yopougon",
            "E\u{301}lodie",
            "Élodie",
            "Œuvre",
            "zèbre",
            "Zoé",
        ]
    );
}

/// A case is found by its code as a person types it: whole, its last parts after a dash, or
/// its last part as a number; spaces and letter case ignored. Not a part's middle.
#[test]
fn cases_are_found_by_their_code() {
    let dir = TempDir::new().unwrap();
    let user = Uuid::now_v7();
    let mut store = open(&dir, "a.db", user);
    let mut ids = Vec::new();
    for code in [
        "CI-R1-D1-C01-000004",
        "CI-R1-D1-C01-000040",
        "000041",
        "AB%_-7",
        "Q-99999999999999999999",
    ] {
        let mut c = child("Awa", user);
        c.case_code = code.into();
        ids.push(store.create(&c).unwrap().id);
    }
    let found = |typed: &str| -> BTreeSet<Uuid> {
        let q = ChildCaseQuery {
            code: Some(typed.into()),
            ..Default::default()
        };
        store
            .child_cases(&q, Page::first(10))
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect()
    };
    let only = |i: usize| BTreeSet::from([ids[i]]);
    assert_eq!(found("CI-R1-D1-C01-000004"), only(0));
    assert_eq!(found(" ci-r1-d1-c01-000004 "), only(0));
    assert_eq!(found("C01-000004"), only(0));
    assert_eq!(found("4"), only(0));
    assert_eq!(found("40"), only(1));
    assert_eq!(found("41"), only(2));
    assert_eq!(found("7"), only(3));
    assert_eq!(found("ab%_-7"), only(3));
    assert_eq!(found("Q-99999999999999999999"), only(4));
    // However the phone's keyboard or a pasted report wrote its digits and dashes.
    assert_eq!(found("\u{664}"), only(0));
    assert_eq!(found("\u{6f4}\u{6f0}"), only(1));
    assert_eq!(found("\u{ff14}"), only(0));
    assert_eq!(found("ＣＩ－Ｒ１－Ｄ１－Ｃ０１－０００００４"), only(0));
    assert_eq!(found("C01\u{2011}000004"), only(0));
    assert_eq!(found("CI-R1-D1-C01-٠٠٠٠٤٠"), only(1));
    // Past SQLite's integers, no number is read as the largest one.
    for nothing in [
        "C01-00004",
        "D1-C01",
        "%",
        "_",
        "_-7",
        "",
        "9223372036854775807",
    ] {
        assert!(found(nothing).is_empty(), "{nothing}");
    }
}

#[test]
fn name_search_ignores_accents_and_case() {
    let dir = TempDir::new().unwrap();
    let user = Uuid::now_v7();
    let mut store = open(&dir, "a.db", user);
    let w = store.create(&workplace("Plantation Kouamé")).unwrap();
    let c = store.create(&child("Adjoa KOUAMÉ", user)).unwrap();
    store.create(&child("Yao N'Guessan", user)).unwrap();

    let hits: BTreeSet<Uuid> = store
        .search_names("kouame", 10)
        .unwrap()
        .into_iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(hits, BTreeSet::from([w.id, c.id]));
    let hits = store.search_names("adj kou", 10).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].kind, RecordKind::ChildCase);
    assert_eq!(store.search_names("guessan", 10).unwrap().len(), 1);
    // Typed as people type it: the name run together, split, with another apostrophe; the
    // letters duplicate detection folds (ɔ, œ) folded alike on both sides.
    let bœuf = store.create(&child("Kɔfi Bœuf", user)).unwrap();
    for typed in ["Nguessan", "N Guessan", "n’guessan", "yao NGUESS"] {
        let hits = store.search_names(typed, 10).unwrap();
        assert_eq!(hits.len(), 1, "{typed}");
        assert_eq!(hits[0].name, "Yao N'Guessan", "the name as written");
    }
    let found = |store: &Store, typed: &str| -> Vec<Uuid> {
        let hits = store.search_names(typed, 10).unwrap();
        hits.into_iter().map(|h| h.id).collect()
    };
    for typed in ["kofi", "boeuf", "Kɔfi Bœuf", "KOFI"] {
        assert_eq!(found(&store, typed), vec![bœuf.id], "{typed}");
    }
    // The same child registered without the apostrophe, or with a space, is found by the name
    // typed with it as on the paper (and the other way round).
    let run_together = store.create(&child("Éloïse Nguessan", user)).unwrap();
    let spaced = store.create(&child("Éloïse N Guessan", user)).unwrap();
    for typed in [
        "n'guessan",
        "N’Guessan",
        "éloïse n'guessan",
        "Eloise N-Guess",
    ] {
        let hits: BTreeSet<Uuid> = found(&store, typed).into_iter().collect();
        assert!(
            hits.contains(&run_together.id) && hits.contains(&spaced.id),
            "{typed}: {hits:?}"
        );
    }
    // Typed run together, the name registered with a lone letter apart is found too.
    let hits: BTreeSet<Uuid> = found(&store, "éloïse nguessan").into_iter().collect();
    assert_eq!(hits, BTreeSet::from([run_together.id, spaced.id]));
    // A lone letter typed apart from the word after it ("N Guessan") finds the name run
    // together too.
    let hits: BTreeSet<Uuid> = found(&store, "eloise n guessan").into_iter().collect();
    assert!(
        hits.contains(&run_together.id) && hits.contains(&spaced.id),
        "{hits:?}"
    );
    // Accents typed as their own marks after the letter (some keyboards, pasted text) find
    // and are found as the letters with them: one child is not two to the search.
    let marked = store
        .create(&child("Ame\u{301}lie He\u{301}le\u{300}ne", user))
        .unwrap();
    let plain = store.create(&child("Amélie Koné", user)).unwrap();
    for (typed, expected) in [
        ("amelie helene", vec![marked.id]),
        ("Amélie Hélène", vec![marked.id]),
        ("Ame\u{301}lie Kone\u{301}", vec![plain.id]),
        ("ǅemal", vec![]),
    ] {
        assert_eq!(found(&store, typed), expected, "{typed}");
    }
    assert_eq!(fold_name("ǅemal Ｋｏｆｉ"), "dzemal kofi");
    // A character that shows nothing, pasted inside a name (a messaging app's zero-width
    // space, a soft hyphen, a joiner), splits no word: the child is found as the name reads.
    let mut pasted = Vec::new();
    for invisible in ['\u{200B}', '\u{00AD}', '\u{2060}', '\u{200D}'] {
        let name = format!("Mari{invisible}am Sangaré");
        pasted.push(store.create(&child(&name, user)).unwrap().id);
    }
    for typed in ["mariam", "Mariam Sangaré", "Mari\u{200B}am"] {
        let hits: BTreeSet<Uuid> = found(&store, typed).into_iter().collect();
        assert_eq!(hits, pasted.iter().copied().collect(), "{typed}");
    }
    // Query syntax typed by a person is never an error.
    for odd in ["\"", "AND OR", "*", "NEAR(", "a:b", ""] {
        store.search_names(odd, 10).unwrap();
    }

    // Renaming moves the record in the search index.
    let mut renamed = store.get::<ChildCase>(c.id).unwrap();
    renamed.name = "Akissi Bamba".into();
    store.update(&renamed).unwrap();
    assert!(store.search_names("adjoa", 10).unwrap().is_empty());
    assert_eq!(store.search_names("bamba", 10).unwrap().len(), 1);
}

#[test]
fn damaged_or_foreign_documents_are_refused_whole() {
    let dir = TempDir::new().unwrap();
    let user = Uuid::now_v7();
    let mut a = open(&dir, "a.db", user);
    let mut b = open(&dir, "b.db", user);
    let w = a.create(&workplace("Atelier")).unwrap();
    let good = a.export_document(w.id).unwrap();

    assert!(matches!(
        b.merge_document(w.id, b"not automerge"),
        Err(Error::DamagedDocument { .. })
    ));
    let mut flipped = good.clone();
    for i in (8..flipped.len()).step_by(7) {
        flipped[i] ^= 0x5a;
    }
    assert!(b.merge_document(w.id, &flipped).is_err());
    assert_eq!(b.count(RecordKind::Workplace).unwrap(), 0);

    // A well-formed document that is not a valid record of its kind.
    let mut doc = automerge::AutoCommit::new();
    use automerge::transaction::Transactable;
    doc.put(automerge::ROOT, "kind", "workplace").unwrap();
    doc.put(automerge::ROOT, "name", 42).unwrap();
    assert!(matches!(
        b.merge_document(w.id, &doc.save()),
        Err(Error::DamagedDocument { .. })
    ));
    assert_eq!(b.count(RecordKind::Workplace).unwrap(), 0);

    // A document of another kind under an existing id, from another device.
    b.merge_document(w.id, &good).unwrap();
    let mut third = open(&dir, "c.db", user);
    let c = third.create(&child("Aya", user)).unwrap();
    assert!(matches!(
        b.merge_document(w.id, &third.export_document(c.id).unwrap()),
        Err(Error::WrongKind { .. })
    ));
    // The same from the device that made the workplace: its changes collide with the
    // workplace's own (same actor, same sequence numbers).
    let c = a.create(&child("Aya", user)).unwrap();
    assert!(matches!(
        b.merge_document(w.id, &a.export_document(c.id).unwrap()),
        Err(Error::WrongKind { .. }) | Err(Error::DamagedDocument { .. })
    ));
    assert_eq!(b.get::<Workplace>(w.id).unwrap(), w);

    // Another workplace's document under this id: unrelated history is refused too.
    let other = third.create(&workplace("Autre atelier")).unwrap();
    assert!(matches!(
        b.merge_document(w.id, &third.export_document(other.id).unwrap()),
        Err(Error::DamagedDocument { .. })
    ));
    assert_eq!(b.get::<Workplace>(w.id).unwrap(), w);
}

#[test]
fn the_integrity_check_is_sound_after_another_connection_wrote() {
    let dir = TempDir::new().unwrap();
    let user = Uuid::now_v7();
    let mut first = open(&dir, "a.db", user);
    first.create(&workplace("Plantation Kouamé")).unwrap();
    assert!(first.integrity_check().unwrap());
    // The same file opened again (another process of the app) and written.
    let mut second = open(&dir, "a.db", user);
    second.create(&workplace("Carrière de Kouamé")).unwrap();
    second.close().unwrap();
    assert!(first.integrity_check().unwrap());
    assert_eq!(first.search_names("carriere", 10).unwrap().len(), 1);
}

/// A store found on a read-only mount (a card remounted read-only, a full or failing disk) is
/// a clear error that names no path, as a new store's unwritable directory is. Needs a
/// read-only bind mount: run where the tests may mount (as root), else it says so and passes.
/// A file holding a store's tables without its schema version (damaged, or altered by
/// hand) is told as damaged in one short sentence, not with the schema's SQL, and is left as
/// it was.
#[test]
fn a_store_without_its_schema_version_is_told_as_damaged() {
    let dir = TempDir::new().unwrap();
    let user = Uuid::now_v7();
    let path = dir.path().join("store.db");
    let config = || StoreConfig::new(&path, Encryption::Unencrypted, user);
    Store::open(config()).unwrap().close().unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 0)
        .unwrap();
    match Store::open(config()) {
        Err(e @ Error::Storage(_)) => {
            let said = e.to_string();
            assert!(said.contains("damaged"), "{said}");
            assert!(said.len() < 200 && !said.contains("CREATE"), "{said}");
        }
        other => panic!("a store without its version: {other:?}"),
    }
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 0);
}

#[test]
fn an_existing_store_that_cannot_be_written_says_so() {
    let dir = TempDir::new().unwrap();
    let (source, mounted) = (dir.path().join("card"), dir.path().join("Aya"));
    std::fs::create_dir_all(&source).unwrap();
    std::fs::create_dir_all(&mounted).unwrap();
    let user = Uuid::now_v7();
    let config = |root: &std::path::Path| {
        StoreConfig::new(root.join("store.db"), Encryption::Key([7; 32]), user)
    };
    let mut store = Store::open(config(&source)).unwrap();
    store.create(&workplace("Plantation")).unwrap();
    store.close().unwrap();
    let mount = |args: &[&str]| {
        std::process::Command::new("mount")
            .args(args)
            .output()
            .is_ok_and(|out| out.status.success())
    };
    let (source_arg, mounted_arg) = (source.to_str().unwrap(), mounted.to_str().unwrap());
    if !mount(&["--bind", source_arg, mounted_arg]) {
        eprintln!("skipped: this user may not mount");
        return;
    }
    struct Unmount<'a>(&'a str);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(mounted_arg);
    assert!(mount(&["-o", "remount,bind,ro", mounted_arg]));
    match Store::open(config(&mounted)) {
        Err(Error::Io(e)) => {
            let said = e.to_string();
            assert!(said.contains("cannot be written"), "{said}");
            assert!(!said.contains("Aya"), "no path: {said}");
        }
        other => panic!("a read-only store: {other:?}"),
    }
}

/// A long note proofread on one phone (letters fixed all along it) while another phone fixes
/// a word in its middle: both edits land where they were made, nothing moved or doubled.
/// Two monitors retype the same note offline, each in words of their own: the merge holds
/// each one's words whole, side by side, not a scatter of both's letters ("MSeethe aysshe
/// csoppdinrying"), which no one can read and no conflict showed.
#[test]
fn a_note_retyped_on_two_phones_merges_into_both_texts_words() {
    let dir = TempDir::new().unwrap();
    let user = Uuid::now_v7();
    let mut a = open(&dir, "a.db", user);
    let mut b = open(&dir, "b.db", user);
    let mut c = child("Aya", user);
    c.notes = "Works on the farm after school.".into();
    let c = a.create(&c).unwrap();
    b.merge_document(c.id, &a.export_document(c.id).unwrap())
        .unwrap();
    let texts = [
        "Seen at the cocoa farm, missing school.",
        "She was carrying cocoa pods on 12 Nov.",
    ];
    for (store, text) in [(&mut a, texts[0]), (&mut b, texts[1])] {
        let mut on: ChildCase = store.get(c.id).unwrap();
        on.notes = text.into();
        store.update(&on).unwrap();
    }
    a.merge_document(c.id, &b.export_document(c.id).unwrap())
        .unwrap();
    b.merge_document(c.id, &a.export_document(c.id).unwrap())
        .unwrap();
    let merged = a.get::<ChildCase>(c.id).unwrap().notes;
    assert_eq!(merged, b.get::<ChildCase>(c.id).unwrap().notes);
    // What each typed beyond the old note is there, each word whole (the old words one of
    // them kept, the other deleted, as a deletion merges).
    let old_words = ["Works", "on", "the", "farm", "after", "school"];
    for text in texts {
        for word in text.split(|c: char| !c.is_alphanumeric()) {
            if !word.is_empty() && !old_words.contains(&word) {
                assert!(merged.contains(word), "{word:?} in {merged:?}");
            }
        }
    }
    assert!(
        merged.contains("Seen at the cocoa farm, missing"),
        "{merged:?}"
    );
    assert!(
        merged.contains("She was carrying cocoa pods on 12 Nov"),
        "{merged:?}"
    );
}

#[test]
fn a_long_note_proofread_on_one_phone_merges_with_an_edit_made_on_another() {
    let dir = TempDir::new().unwrap();
    let user = Uuid::now_v7();
    let mut a = open(&dir, "a.db", user);
    let mut b = open(&dir, "b.db", user);
    let words = [
        "travail", "champ", "cacao", "école", "enfant", "le", "dans", "avec",
    ];
    let note: String = (0..4_000)
        .map(|i| words[(i * 7 + i / 3) % words.len()])
        .collect::<Vec<_>>()
        .join(" ");
    let mut c = child("Aya", user);
    c.notes = note.clone();
    let c = a.create(&c).unwrap();
    b.merge_document(c.id, &a.export_document(c.id).unwrap())
        .unwrap();

    // Phone A: forty letters fixed along the note.
    let mut on_a: ChildCase = a.get(c.id).unwrap();
    let mut chars: Vec<char> = on_a.notes.chars().collect();
    let mut fixed = Vec::new();
    for k in 0..40 {
        let at = (200 + k * 550..).find(|&j| chars[j] == 'a').unwrap();
        chars[at] = 'â';
        fixed.push(at);
    }
    on_a.notes = chars.into_iter().collect();
    a.update(&on_a).unwrap();
    // Phone B: a word in the middle replaced.
    let mut on_b: ChildCase = b.get(c.id).unwrap();
    let middle = on_b.notes.char_indices().nth(14_000).unwrap().0;
    let word_at = middle + on_b.notes[middle..].find(' ').unwrap() + 1;
    let word_end = word_at + on_b.notes[word_at..].find(' ').unwrap();
    on_b.notes.replace_range(word_at..word_end, "«CORRIGÉ»");
    let expected_b = on_b.notes.clone();
    b.update(&on_b).unwrap();

    a.merge_document(c.id, &b.export_document(c.id).unwrap())
        .unwrap();
    b.merge_document(c.id, &a.export_document(c.id).unwrap())
        .unwrap();
    let merged: ChildCase = a.get(c.id).unwrap();
    assert_eq!(merged.notes, b.get::<ChildCase>(c.id).unwrap().notes);
    // B's word where B put it, and only once.
    assert_eq!(merged.notes.matches("«CORRIGÉ»").count(), 1);
    let b_at = expected_b.find("«CORRIGÉ»").unwrap();
    let merged_at = merged.notes.find("«CORRIGÉ»").unwrap();
    assert_eq!(
        merged.notes[..merged_at].chars().count(),
        expected_b[..b_at].chars().count(),
        "the word moved"
    );
    // A's letters where A fixed them, and the note as long as A's with B's word in.
    let chars: Vec<char> = merged.notes.chars().collect();
    let shift = |at: usize| {
        if at > expected_b[..b_at].chars().count() {
            "«CORRIGÉ»".chars().count() as isize - note[word_at..word_end].chars().count() as isize
        } else {
            0
        }
    };
    for at in fixed {
        assert_eq!(chars[(at as isize + shift(at)) as usize], 'â', "at {at}");
    }
    assert!(a.conflicts(c.id).unwrap().is_empty());
}

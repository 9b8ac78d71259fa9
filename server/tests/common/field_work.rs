//! Random field work: seeded edits, merges and syncs on several devices.

use super::*;

/// An area outside every principal of these tests (another region).
pub fn foreign_area() -> Area {
    Area::new(COUNTRY, "CI-R2", "CI-R2-D1", "CI-R2-D1-C01")
}

/// Creates a record of `kind` in `area` on the device's store, with an id from `rng`; an area
/// outside the device's user's as an app that did not check would (`without_area_check`).
pub fn create_record(
    rng: &mut ChaCha8Rng,
    store: &mut Store,
    kind: RecordKind,
    area: Area,
) -> Uuid {
    let id = uuid(rng);
    let user = store.user_id();
    let n: u32 = rng.gen_range(0..10_000);
    match kind {
        RecordKind::Workplace => {
            let mut w = workplace(area, &format!("Atelier {n}"));
            w.id = id;
            without_area_check(store, |s| s.create(&w)).expect("create workplace");
        }
        RecordKind::Visit => {
            let mut v = visit(area, uuid(rng), user, rng.gen_range(1..=28));
            v.id = id;
            // Drafts, which their visitor still writes, and visits submitted for review.
            if rng.gen_bool(0.5) {
                v.status = VisitStatus::Draft;
            }
            without_area_check(store, |s| s.create(&v)).expect("create visit");
        }
        RecordKind::ChildCase => {
            let mut c = child(area, &format!("Enfant {n}"), user);
            c.id = id;
            c.estimated_age = Some(rng.gen_range(5..=17));
            without_area_check(store, |s| s.create(&c)).expect("create child case");
        }
        RecordKind::User | RecordKind::Reference => {
            panic!("devices do not create users or reference data")
        }
    }
    id
}

pub fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

pub fn toggle<T: Ord + Clone>(set: &mut std::collections::BTreeSet<T>, item: &T) {
    if !set.remove(item) {
        set.insert(item.clone());
    }
}

/// Edits a text field as a person would: a word inserted somewhere, or a few characters
/// deleted (accented letters included, so that offsets are not bytes).
pub fn edit_text(rng: &mut ChaCha8Rng, text: &mut String) {
    let bounds: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain([text.len()])
        .collect();
    if text.chars().count() > 4 && rng.gen_bool(0.3) {
        let from = rng.gen_range(0..bounds.len() - 1);
        let to = (from + rng.gen_range(1..=4)).min(bounds.len() - 1);
        text.replace_range(bounds[from]..bounds[to], "");
    } else {
        let word = pick(
            rng,
            &[
                "école", "champ", "machette", "récolte", "père", "mère", "cacao", "nuit", "œuvre",
            ],
        );
        let at = *pick(rng, &bounds);
        text.insert_str(at, &format!(" {word}"));
    }
}

/// One random edit of a record the store holds, among fields other devices edit too.
/// `forced_field` is never touched here (see `force_field`). A value drawn equal to the one
/// stored writes nothing: another edit is drawn, so that an edit is always made.
pub fn random_edit(rng: &mut ChaCha8Rng, store: &mut Store, id: Uuid) {
    let before = heads(store, id);
    for _ in 0..100 {
        random_edit_once(rng, store, id);
        if heads(store, id) != before {
            return;
        }
    }
    // A visit is its visitor's to write, and a submitted one only moves on: a user who is not
    // its visitor, or not a supervisor of a submitted one, has nothing to change in it.
    if store.kind_of(id).ok() == Some(RecordKind::Visit) {
        return;
    }
    panic!("100 random edits of {id} changed nothing");
}

pub fn random_edit_once(rng: &mut ChaCha8Rng, store: &mut Store, id: Uuid) {
    match store.kind_of(id).expect("record present") {
        RecordKind::ChildCase => {
            let mut c: ChildCase = store.get(id).expect("read child case");
            match rng.gen_range(0..10) {
                0 => {
                    c.school = *pick(
                        rng,
                        &[
                            SchoolStatus::Attending,
                            SchoolStatus::AttendingIrregularly,
                            SchoolStatus::DroppedOut,
                            SchoolStatus::NeverEnrolled,
                            SchoolStatus::Unknown,
                        ],
                    )
                }
                1 => c.hours_per_week = rng.gen_range(0..=60),
                2 => c.night_work = !c.night_work,
                3 | 4 => edit_text(rng, &mut c.notes),
                5 => {
                    c.activity =
                        pick(rng, &["récolte", "portage", "vente", "désherbage"]).to_string()
                }
                6 => toggle(
                    &mut c.tasks,
                    &pick(rng, &["harvest", "weeding", "carrying", "spraying"]).to_string(),
                ),
                7 => toggle(
                    &mut c.hazards,
                    &pick(
                        rng,
                        &["heavy_loads", "sharp_tools", "pesticides", "heights"],
                    )
                    .to_string(),
                ),
                8 => {
                    let existing: Vec<Uuid> = c.referrals.keys().copied().collect();
                    if !existing.is_empty() && rng.gen_bool(0.6) {
                        let key = *pick(rng, &existing);
                        let referral = c.referrals.get_mut(&key).expect("present");
                        edit_text(rng, &mut referral.outcome);
                    } else {
                        let key = uuid(rng);
                        c.referrals.insert(
                            key,
                            Referral {
                                service: *pick(
                                    rng,
                                    &[
                                        ServiceKind::Education,
                                        ServiceKind::Health,
                                        ServiceKind::SocialProtection,
                                        ServiceKind::Vocational,
                                    ],
                                ),
                                provider: "Centre social de Soubré".into(),
                                date: identified_on() + chrono::Days::new(rng.gen_range(0..60)),
                                outcome: String::new(),
                            },
                        );
                    }
                }
                _ => c.estimated_age = Some(rng.gen_range(5..=17)),
            }
            store.update(&c).expect("update child case");
        }
        RecordKind::Visit => {
            let mut v: Visit = store.get(id).expect("read visit");
            // What a visit records is its visitor's to write, while a draft or returned
            // (`rights::Step::VisitContent`); anyone else may only move its status.
            let writes_content = v.visitor_id == store.user_id()
                && matches!(v.status, VisitStatus::Draft | VisitStatus::Returned);
            match if writes_content {
                rng.gen_range(0..8)
            } else {
                2
            } {
                0 | 1 | 5 => edit_text(rng, &mut v.findings),
                2 => {
                    // A status the store's user may set (the hub tells the device its role):
                    // an honest device's edits are never refused.
                    let user = store.user_id();
                    let role = store
                        .user_profile()
                        .expect("read the profile")
                        .map(|p| p.role);
                    let allowed: Vec<VisitStatus> = [
                        VisitStatus::Draft,
                        VisitStatus::Submitted,
                        VisitStatus::Validated,
                        VisitStatus::Returned,
                    ]
                    .into_iter()
                    .filter(|to| {
                        role.is_some_and(|role| {
                            use vigie_core::domain::records::Subject;
                            let after = Visit {
                                status: *to,
                                ..v.clone()
                            };
                            vigie_core::rights::check(
                                role,
                                user,
                                Some(Subject::Visit(&v)),
                                Subject::Visit(&after),
                            )
                            .is_ok()
                        })
                    })
                    .collect();
                    if !allowed.is_empty() {
                        v.status = *pick(rng, &allowed);
                    }
                }
                3 => v.workforce.male.under_12 = rng.gen_range(0..10),
                4 => {
                    // A warning or an order is an inspector's (`rights::Step::Inspection`).
                    let role = store
                        .user_profile()
                        .expect("read the profile")
                        .map(|p| p.role);
                    let actions: &[VisitAction] = match role {
                        Some(Role::Inspector | Role::Supervisor) => &[
                            VisitAction::Advice,
                            VisitAction::Warning,
                            VisitAction::Order,
                            VisitAction::Referral,
                        ],
                        _ => &[VisitAction::Advice, VisitAction::Referral],
                    };
                    toggle(&mut v.actions, pick(rng, actions))
                }
                6 => {
                    let indicator = *pick(rng, &ForcedLabourIndicator::ALL);
                    if v.forced_labour.remove(&indicator).is_none() {
                        v.forced_labour
                            .insert(indicator, "observé pendant la visite".into());
                    }
                }
                _ => v.workforce.female.age_12_14 = rng.gen_range(0..10),
            }
            store.update(&v).expect("update visit");
        }
        RecordKind::Workplace => {
            let mut w: Workplace = store.get(id).expect("read workplace");
            match rng.gen_range(0..6) {
                0 | 1 => edit_text(rng, &mut w.notes),
                2 => w.owner_name = pick(rng, &["Kouamé", "Yao", "Traoré", "Koné"]).to_string(),
                3 => toggle(
                    &mut w.buyers,
                    &pick(rng, &["Coopérative A", "Négociant B", "Usine C"]).to_string(),
                ),
                4 => w.name = pick(rng, &["Plantation Aké", "Champ Koffi", "Carrière"]).to_string(),
                _ => {
                    w.sector = pick(rng, &["cocoa", "rubber", "mining", "other"]).to_string();
                    w.formality = if w.formality == Formality::Formal {
                        Formality::Informal
                    } else {
                        Formality::Formal
                    };
                }
            }
            store.update(&w).expect("update workplace");
        }
        RecordKind::User | RecordKind::Reference => {
            panic!("devices do not edit users or reference data")
        }
    }
}

/// The field `force_field` sets, by kind: random edits never touch it, so a conflict made on it
/// stays until someone resolves it.
pub fn forced_path(kind: RecordKind) -> Vec<String> {
    let path: &[&str] = match kind {
        RecordKind::ChildCase => &["guardian"],
        RecordKind::Visit => &["workforce", "female", "adults"],
        RecordKind::Workplace => &["owner_contact"],
        RecordKind::User | RecordKind::Reference => panic!("not edited here"),
    };
    path.iter().map(|s| s.to_string()).collect()
}

/// Sets a record's forced field to a value made from `n`; returns the value as the record's
/// JSON holds it.
pub fn force_field(store: &mut Store, id: Uuid, n: u32) -> serde_json::Value {
    match store.kind_of(id).expect("record present") {
        RecordKind::ChildCase => {
            let mut c: ChildCase = store.get(id).expect("read");
            c.guardian = format!("Tuteur {n}");
            store.update(&c).expect("update");
            serde_json::Value::from(c.guardian)
        }
        RecordKind::Visit => {
            let mut v: Visit = store.get(id).expect("read");
            v.workforce.female.adults = n as i32;
            store.update(&v).expect("update");
            serde_json::Value::from(n)
        }
        RecordKind::Workplace => {
            let mut w: Workplace = store.get(id).expect("read");
            w.owner_contact = format!("+225 07 {n:04}");
            store.update(&w).expect("update");
            serde_json::Value::from(w.owner_contact)
        }
        RecordKind::User | RecordKind::Reference => panic!("not edited here"),
    }
}

//! Property: any interleaving of edits on two replicas of a record, merged in any order, yields
//! the same record on every replica, and every value that no replica saw overwritten is kept.
//!
//! The expected conflicts come from a model of a multi-value register per field: a write on a
//! replica supersedes the values that replica had seen; a merge unites what both had and drops
//! what either had superseded.

use automerge::Automerge;
use chrono::{FixedOffset, TimeZone};
use proptest::prelude::*;
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;
use vigie_core::doc::{self, ChangeAuthor};
use vigie_core::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    Status,
    GirlsUnder12,
    AnswerLi01,
    FollowUpDue,
}

const FIELDS: [Field; 4] = [
    Field::Status,
    Field::GirlsUnder12,
    Field::AnswerLi01,
    Field::FollowUpDue,
];

impl Field {
    fn path(self) -> &'static str {
        match self {
            Field::Status => "status",
            Field::GirlsUnder12 => "workforce.female.under_12",
            Field::AnswerLi01 => "checklist.answers.LI01",
            Field::FollowUpDue => "follow_up_due",
        }
    }

    /// Sets the field on a visit from a small value domain (so that equal writes happen too).
    fn set(self, v: &mut Visit, value: u8) {
        match self {
            Field::Status => {
                v.status = [
                    VisitStatus::Draft,
                    VisitStatus::Submitted,
                    VisitStatus::Validated,
                    VisitStatus::Returned,
                ][value as usize % 4]
            }
            Field::GirlsUnder12 => v.workforce.female.under_12 = i32::from(value % 5),
            Field::AnswerLi01 => {
                v.checklist.answers.insert(
                    "LI01".into(),
                    [Answer::Yes, Answer::No, Answer::NotApplicable][value as usize % 3],
                );
            }
            Field::FollowUpDue => {
                v.follow_up_due = Some(
                    chrono::NaiveDate::from_ymd_opt(2026, 7, 1 + u32::from(value % 4)).unwrap(),
                )
            }
        }
    }

    fn read(self, v: &Visit) -> Json {
        let whole = serde_json::to_value(v).unwrap();
        self.path()
            .split('.')
            .fold(whole, |j, k| j.get(k).cloned().unwrap_or(Json::Null))
    }
}

#[derive(Debug, Clone)]
enum Op {
    Edit {
        replica: usize,
        field: Field,
        value: u8,
    },
    EditText {
        replica: usize,
        word: u8,
    },
    /// The other replica's changes merged into `to`.
    Merge {
        to: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize, 0..4usize, any::<u8>()).prop_map(|(replica, f, value)| Op::Edit { replica, field: FIELDS[f], value }),
        1 => (0..2usize, any::<u8>()).prop_map(|(replica, word)| Op::EditText { replica, word }),
        2 => (0..2usize).prop_map(|to| Op::Merge { to }),
    ]
}

/// A replica: its document and the model of what each field must hold.
struct Replica {
    doc: Automerge,
    author: ChangeAuthor,
    /// Per field, the values not superseded, each with the id of the write that made it.
    candidates: BTreeMap<Field, Vec<(Json, u32)>>,
    superseded: BTreeSet<u32>,
}

fn base_visit() -> Visit {
    let w = Workplace::new(
        "Plantation",
        "cocoa",
        Formality::Informal,
        Area::new("CI", "R", "D", "C"),
    );
    let start = FixedOffset::east_opt(0)
        .unwrap()
        .with_ymd_and_hms(2026, 3, 1, 8, 0, 0)
        .unwrap();
    let mut v = Visit::new(VisitKind::CommunityMonitoring, &w, Uuid::now_v7(), start);
    v.checklist.checklist = "labour-inspection".into();
    v.checklist.version = 1;
    for f in FIELDS {
        f.set(&mut v, 0);
    }
    v.findings = "Constat initial.".into();
    v
}

fn replica(doc: Automerge, n: u8, initial: &Visit) -> Replica {
    let device = Uuid::from_u128(u128::from(n) + 1);
    let doc = doc.with_actor(doc::actor_for(device, [n; 8]));
    Replica {
        doc,
        author: ChangeAuthor {
            user: Uuid::from_u128(100 + u128::from(n)),
            device,
        },
        // The initial write of each field has its own id (1000 + field), shared by both replicas.
        candidates: FIELDS
            .iter()
            .enumerate()
            .map(|(i, f)| (*f, vec![(f.read(initial), 1000 + i as u32)]))
            .collect(),
        superseded: BTreeSet::new(),
    }
}

fn merge_into(to: &mut Replica, from: &mut Replica) {
    to.doc.merge(&mut from.doc).unwrap();
    to.superseded.extend(from.superseded.iter().copied());
    for f in FIELDS {
        let mut all = to.candidates[&f].clone();
        for c in &from.candidates[&f] {
            if !all.contains(c) {
                all.push(c.clone());
            }
        }
        all.retain(|(_, id)| !to.superseded.contains(id));
        to.candidates.insert(f, all);
    }
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let initial = base_visit();
    let id = initial.id;
    let mut origin = Automerge::new();
    doc::write_record(
        &mut origin,
        &initial,
        &ChangeAuthor {
            user: Uuid::nil(),
            device: Uuid::nil(),
        },
    )
    .unwrap();
    let initial: Visit = doc::read_record(&origin, id).unwrap();
    let mut replicas = [
        replica(origin.clone(), 1, &initial),
        replica(origin, 2, &initial),
    ];
    let mut next_write = 1u32;

    for op in ops {
        match *op {
            Op::Edit {
                replica,
                field,
                value,
            } => {
                let r = &mut replicas[replica];
                let mut v: Visit = doc::read_record(&r.doc, id).unwrap();
                let before = field.read(&v);
                field.set(&mut v, value);
                // An unchanged value writes nothing: the model does the same.
                if field.read(&v) != before {
                    doc::write_record(&mut r.doc, &v, &r.author).unwrap();
                    let seen: Vec<u32> = r.candidates[&field].iter().map(|(_, id)| *id).collect();
                    r.superseded.extend(seen);
                    r.candidates
                        .insert(field, vec![(field.read(&v), next_write)]);
                    next_write += 1;
                }
            }
            Op::EditText { replica, word } => {
                let r = &mut replicas[replica];
                let mut v: Visit = doc::read_record(&r.doc, id).unwrap();
                v.findings.push_str(&format!(" mot{word}é"));
                doc::write_record(&mut r.doc, &v, &r.author).unwrap();
            }
            Op::Merge { to } => {
                let (a, b) = replicas.split_at_mut(1);
                let (to, from) = if to == 0 {
                    (&mut a[0], &mut b[0])
                } else {
                    (&mut b[0], &mut a[0])
                };
                merge_into(to, from);
            }
        }
    }

    // Merge in both orders, and into a third replica in yet another way.
    let mut third = Automerge::new();
    third.merge(&mut replicas[1].doc.clone()).unwrap();
    third.merge(&mut replicas[0].doc.clone()).unwrap();
    let (a, b) = replicas.split_at_mut(1);
    merge_into(&mut a[0], &mut b[0]);
    merge_into(&mut b[0], &mut a[0]);
    let (a, b) = (&replicas[0], &replicas[1]);

    prop_assert_eq!(a.doc.get_heads(), b.doc.get_heads());
    prop_assert_eq!(third.get_heads(), a.doc.get_heads());
    let ra: Visit = doc::read_record(&a.doc, id).unwrap();
    let rb: Visit = doc::read_record(&b.doc, id).unwrap();
    let rc: Visit = doc::read_record(&third, id).unwrap();
    prop_assert_eq!(&ra, &rb);
    prop_assert_eq!(&ra, &rc);
    prop_assert_eq!(
        doc::conflicts::<Visit>(&a.doc).unwrap(),
        doc::conflicts::<Visit>(&b.doc).unwrap()
    );

    let conflicts = doc::conflicts::<Visit>(&a.doc).unwrap();
    for f in FIELDS {
        let expected: BTreeSet<String> = a.candidates[&f]
            .iter()
            .map(|(v, _)| v.to_string())
            .collect();
        let shown = conflicts.iter().find(|c| c.field() == f.path());
        match shown {
            Some(c) => {
                let values: BTreeSet<String> =
                    c.values.iter().map(|v| v.value.to_string()).collect();
                prop_assert_eq!(values, expected, "field {}", f.path());
            }
            None => {
                prop_assert_eq!(
                    expected.len(),
                    1,
                    "field {} lost a concurrent value",
                    f.path()
                );
                prop_assert_eq!(
                    f.read(&ra).to_string(),
                    expected.into_iter().next().unwrap()
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn replicas_converge_and_keep_every_concurrent_value(ops in prop::collection::vec(op(), 0..40)) {
        run(&ops)?;
    }
}

#[test]
fn two_concurrent_status_changes_are_both_kept() {
    let ops = [
        Op::Edit {
            replica: 0,
            field: Field::Status,
            value: 2,
        },
        Op::Edit {
            replica: 1,
            field: Field::Status,
            value: 3,
        },
    ];
    run(&ops).unwrap();
}

//! Record fields as a supervisor reads them: a field's stored path (`hours_per_week`,
//! `followups.<id>.next_due`) under the label the record's page gives it ("Valeurs"), and a
//! stored value in words. The history, the conflicts and the quarantine list name fields this
//! way, never by their internal codes.

use super::i18n::Tr;
use serde_json::Value as Json;
use uuid::Uuid;
use vigie_core::{ChildCase, RecordKind};

/// The catalogue key of a record's top-level field: the label its page shows.
fn key(kind: Option<RecordKind>, field: &str) -> Option<&'static str> {
    use RecordKind::{Visit, Workplace};
    Some(match (kind, field) {
        (Some(Visit), "kind") => "visit.kind",
        (Some(Visit), "status") => "visit.status",
        (Some(Visit), "started_at") => "visit.started",
        (Some(Visit), "ended_at") => "visit.ended",
        (Some(Visit), "visitor_id") => "visit.visitor",
        (Some(Visit), "checklist") => "field.checklist",
        (Some(Visit), "forced_labour") => "visit.forced_labour",
        (Some(Visit), "children_identified") => "visit.children",
        (Some(Visit), "reviewed_by") => "visit.reviewed_by",
        (Some(Visit), "review_comment") => "visit.review_comment",
        (Some(Visit), "findings") => "visit.findings",
        (Some(Visit), "workforce") => "field.workforce",
        (Some(Visit), "actions") => "field.actions",
        (Some(Visit), "gps") => "field.gps",
        (Some(Workplace), "sector") => "workplace.sector",
        (Some(Workplace), "owner_name") => "workplace.owner",
        (Some(Workplace), "owner_contact") => "field.owner_contact",
        (Some(Workplace), "formality") => "field.formality",
        (Some(Workplace), "buyers") => "field.buyers",
        (Some(Workplace), "suppliers") => "field.suppliers",
        (Some(Workplace), "location") => "field.area",
        (_, "status") => "case.status",
        (_, "classification") => "case.classification",
        (_, "sex") => "case.sex",
        (_, "date_of_birth") => "case.date_of_birth",
        (_, "estimated_age" | "age_basis") => "field.estimated_age",
        (_, "guardian") => "case.guardian",
        (_, "household") => "field.household",
        (_, "area") => "field.area",
        (_, "identified_on") => "case.identified_on",
        (_, "identified_by") => "case.identified_by",
        (_, "school") => "case.school",
        (_, "activity") => "case.activity",
        (_, "tasks") => "field.tasks",
        (_, "hours_per_week") => "case.hours",
        (_, "night_work") => "field.night_work",
        (_, "hazards") => "case.hazards",
        (_, "worst_forms") => "field.worst_forms",
        (_, "referrals") => "case.referrals",
        (_, "followups") => "case.follow_ups",
        (_, "notes") => "case.notes",
        (_, "remediated_on") => "case.remediated_on",
        (_, "follow_up_due") => "case.follow_up_due",
        (_, "merged_into" | "merged_from") => "field.merged_into",
        (_, "case_code") => "field.case_code",
        (_, "name") => "field.name",
        (_, "workplace_id") => "field.workplace",
        (_, "identified_on_visit") => "field.identified_on_visit",
        (_, "captured_with") => "field.captured_with",
        _ => return None,
    })
}

/// A top-level field's label; a field no page names (a later version's) as its words.
fn top_label(t: Tr, kind: Option<RecordKind>, field: &str) -> String {
    // A manifest entry is a key of its own, named by the attachment's id.
    if field.starts_with(vigie_core::doc::ATTACHMENT_PREFIX) {
        return t.get("field.attachments").to_string();
    }
    match key(kind, field) {
        Some(key) => t.get(key).to_string(),
        None => field.replace('_', " "),
    }
}

/// The follow-up or referral a path goes through, as a person tells it ("Suivi du
/// 15/01/2026"), or the list's name when the case does not hold it (any more).
fn entry_label(t: Tr, head: &str, id: &str, case: Option<&ChildCase>) -> String {
    let id = Uuid::parse_str(id).ok();
    let date = match head {
        "followups" => case
            .zip(id)
            .and_then(|(c, id)| c.followups.get(&id))
            .map(|f| f.date),
        _ => case
            .zip(id)
            .and_then(|(c, id)| c.referrals.get(&id))
            .map(|r| r.date),
    };
    match (head, date) {
        ("followups", Some(d)) => t.fmt("case.follow_up_of", t.day(d)),
        ("referrals", Some(d)) => t.fmt("case.referral_of", t.day(d)),
        _ => top_label(t, Some(RecordKind::ChildCase), head),
    }
}

/// One field's label, down to the part of a follow-up or referral it is ("Suivi du
/// 15/01/2026 : Prochain suivi"); `case` is the record when it is a case (its entries' dates).
pub fn field(t: Tr, kind: Option<RecordKind>, path: &str, case: Option<&ChildCase>) -> String {
    let parts: Vec<&str> = path.split('.').collect();
    match parts.as_slice() {
        [head @ ("followups" | "referrals"), id, sub, ..] => {
            let part = t.code(&format!("field.{head}"), sub);
            part_of(t, &entry_label(t, head, id, case), &part)
        }
        [head @ ("followups" | "referrals"), id] => entry_label(t, head, id, case),
        // A workplace's GPS point, not its area (the location holds both).
        ["location", "point", ..] if kind == Some(RecordKind::Workplace) => {
            t.get("field.gps").to_string()
        }
        [head, ..] => top_label(t, kind, head),
        [] => String::new(),
    }
}

/// Fields changed together, as a list a person reads: a follow-up's or referral's parts under
/// the entry ("Suivi du 2026-01-15"), a classification's under "Classement", each label once.
pub fn fields<'a>(
    t: Tr,
    kind: Option<RecordKind>,
    paths: impl IntoIterator<Item = &'a str>,
    case: Option<&ChildCase>,
) -> String {
    let mut labels: Vec<String> = Vec::new();
    for path in paths {
        let parts: Vec<&str> = path.split('.').collect();
        let label = match parts.as_slice() {
            [head @ ("followups" | "referrals"), id, ..] => entry_label(t, head, id, case),
            [head, ..] => top_label(t, kind, head),
            [] => continue,
        };
        if !labels.contains(&label) {
            labels.push(label);
        }
    }
    labels.join(", ")
}

/// The catalogue prefix of the codes a field holds (`sex.female`), if it holds codes.
fn code_prefix(kind: Option<RecordKind>, path: &str) -> Option<&'static str> {
    let parts: Vec<&str> = path.split('.').collect();
    Some(match (kind, parts.as_slice()) {
        (Some(RecordKind::Visit), ["status"]) => "visit_status",
        (Some(RecordKind::Visit), ["kind"]) => "visit_kind",
        (Some(RecordKind::Visit), ["forced_labour", ..]) => "fl",
        (_, ["status"]) => "status",
        (_, ["sex"]) => "sex",
        (_, ["school"]) => "school",
        (_, ["classification", "outcome"]) => "class",
        (_, ["worst_forms"]) => "worst_form",
        (_, ["followups", _, "situation"]) => "situation",
        (_, ["referrals", _, "service"]) => "service",
        _ => return None,
    })
}

/// A device as the history and the conflicts name it: the first 8 digits of its id, which
/// the devices page lists whole ("appareil 1f3c9a20").
pub fn device(t: Tr, device: Uuid) -> String {
    // The hub's own writes (the console's, a quarantine reviewed): no device of anyone's.
    if device == crate::HUB_ADMIN {
        return t.get("case.console_device").into();
    }
    let id = device.simple().to_string();
    t.fmt("case.conflict_device", &id[..8])
}

/// A stored value in words: a code by its label, text without quotes, yes or no.
/// Whether a record's field holds a user's id (shown by the user's name).
pub fn is_user_field(kind: Option<RecordKind>, path: &str) -> bool {
    matches!(
        (kind, path),
        (Some(RecordKind::ChildCase), "identified_by")
            | (Some(RecordKind::Visit), "visitor_id" | "reviewed_by")
    )
}

pub fn value(t: Tr, kind: Option<RecordKind>, path: &str, value: &Json) -> String {
    let prefix = code_prefix(kind, path);
    let word = |text: &str| match prefix {
        Some(prefix) => t.code(prefix, text),
        None => text.to_string(),
    };
    match value {
        Json::Null => t.get("labels.empty").to_string(),
        Json::Bool(true) => t.get("labels.yes").to_string(),
        Json::Bool(false) => t.get("labels.no").to_string(),
        Json::Number(n) => n.to_string(),
        Json::String(s) if s.is_empty() => t.get("labels.empty").to_string(),
        // A day (a date field's stored form) as the page's readers write it.
        Json::String(s) if prefix.is_none() && s.len() == 10 => {
            match chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                Ok(day) => t.day(day),
                Err(_) => s.clone(),
            }
        }
        Json::String(s) => word(s),
        Json::Array(items) if items.is_empty() => t.get("labels.empty").to_string(),
        Json::Array(items) => items
            .iter()
            .map(|item| match item {
                Json::String(s) => word(s),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        Json::Object(map) if map.is_empty() => t.get("labels.empty").to_string(),
        // A GPS point by its coordinates: two points side by side told apart.
        Json::Object(map) if map.contains_key("latitude") && map.contains_key("longitude") => {
            let number = |key: &str| map.get(key).map(Json::to_string).unwrap_or_default();
            format!("{}, {}", number("latitude"), number("longitude"))
        }
        Json::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                Json::String(s) if !s.is_empty() => part_of(t, &word(k), s),
                Json::Number(n) => part_of(t, &word(k), &n.to_string()),
                _ => word(k),
            })
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// "whole : part", as the page's language writes it.
fn part_of(t: Tr, whole: &str, part: &str) -> String {
    t.fmt("labels.part", whole).replacen("{}", part, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::i18n::Lang;

    #[test]
    fn paths_and_values_read_as_words() {
        let t = Tr(Lang::Fr);
        let case_kind = Some(RecordKind::ChildCase);
        assert_eq!(field(t, case_kind, "guardian", None), "Tuteur");
        assert_eq!(
            field(t, case_kind, "hours_per_week", None),
            "Heures par semaine"
        );
        let id = Uuid::now_v7();
        assert_eq!(
            fields(
                t,
                case_kind,
                [
                    "classification.outcome",
                    "classification.reasons",
                    &format!("followups.{id}.next_due"),
                    &format!("followups.{id}.date"),
                    "notes",
                ],
                None
            ),
            "Classement, Suivis, Notes"
        );
        assert_eq!(
            field(t, case_kind, &format!("followups.{id}.next_due"), None),
            "Suivis : Prochain suivi"
        );
        assert_eq!(
            fields(t, case_kind, [format!("$attachment:{id}").as_str()], None),
            "Pièces jointes"
        );
        assert_eq!(
            value(t, case_kind, "guardian", &Json::String("Awa".into())),
            "Awa"
        );
        assert_eq!(
            value(
                t,
                case_kind,
                "classification.outcome",
                &Json::String("hazardous_child_labour".into())
            ),
            t.code("class", "hazardous_child_labour")
        );
        assert_eq!(value(t, case_kind, "hours_per_week", &Json::from(30)), "30");
        // A GPS point in conflict: named as one, by its coordinates.
        let workplace = Some(RecordKind::Workplace);
        assert_eq!(
            field(t, workplace, "location.point", None),
            t.get("field.gps")
        );
        assert_eq!(
            value(
                t,
                workplace,
                "location.point",
                &serde_json::json!({"latitude": 5.35, "longitude": -6.1})
            ),
            "5.35, -6.1"
        );
        assert_eq!(
            value(
                t,
                case_kind,
                "identified_on",
                &Json::String("2026-07-13".into())
            ),
            "13/07/2026"
        );
        assert_eq!(
            field(
                t,
                case_kind,
                &format!("followups.{id}.date"),
                Some(&{
                    let mut c = ChildCase::new(
                        "C",
                        "x",
                        vigie_core::Sex::Female,
                        vigie_core::Area::new("CI", "CI-R1", "CI-R1-D1", "CI-R1-D1-C01"),
                        chrono::NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(),
                        Uuid::nil(),
                    );
                    c.followups.insert(
                        id,
                        vigie_core::FollowUp {
                            date: chrono::NaiveDate::from_ymd_opt(2026, 1, 15).unwrap(),
                            situation: vigie_core::FollowUpSituation::InSchool,
                            notes: String::new(),
                            next_due: None,
                        },
                    );
                    c
                })
            ),
            "Suivi du 15/01/2026 : Date du suivi"
        );
    }

    /// Every field a phone writes is named by a label (a workplace's history read "buyers,
    /// suppliers, formality").
    #[test]
    fn every_field_of_a_record_has_a_label() {
        use vigie_core::{Area, Formality, Sex, Workplace};
        let area = Area::new("CI", "CI-R1", "CI-R1-D1", "CI-R1-D1-C01");
        let day = chrono::NaiveDate::from_ymd_opt(2026, 4, 1).unwrap();
        let records = [
            (
                RecordKind::Workplace,
                serde_json::to_value(Workplace::new(
                    "x",
                    "cocoa",
                    Formality::Formal,
                    area.clone(),
                )),
            ),
            (
                RecordKind::ChildCase,
                serde_json::to_value(ChildCase::new(
                    "C",
                    "x",
                    Sex::Female,
                    area,
                    day,
                    Uuid::nil(),
                )),
            ),
        ];
        for (kind, json) in records {
            let json = json.unwrap();
            for key in json.as_object().unwrap().keys() {
                if ["id", "version"].contains(&key.as_str()) {
                    continue;
                }
                for lang in [Lang::Fr, Lang::En] {
                    let shown = field(Tr(lang), Some(kind), key, None);
                    assert_ne!(&shown, key, "{kind:?}.{key} in {lang:?}");
                }
            }
        }
    }
}

//! What a hub publishes, one content per type: country profiles, checklists, sectors, referral
//! directories and administrative area trees; the files `vigie reference publish` reads; and
//! the versions (`key@version`) a record names as the ones it was captured with.

use crate::domain::area::Area;
use crate::domain::classify::{RuleSet, Thresholds};
use crate::domain::codes::{AreaLevel, ReferenceType, ServiceKind, WorstForm};
use crate::domain::reference::labels::{
    ChecklistItem, Item, Labels, valid_code, validate_checklist_items, validate_items,
};
use crate::domain::validation::ValidationError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

// ---------------------------------------------------------------------------------------------
// Contents

/// What a country sets within the ILO conventions (C138, C182): its thresholds (ages, hours,
/// hazardous work list, follow-up schedule) and the worst forms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountryProfile {
    pub name: Labels,
    #[serde(flatten)]
    pub thresholds: Thresholds,
    /// C182 art. 3 (a)–(c), by the codes of `WorstForm`.
    #[serde(default)]
    pub worst_forms: Vec<Item>,
}

impl CountryProfile {
    /// The rule set the classifier applies, named `key@version`.
    pub fn rule_set(&self, key: &str, version: u32) -> RuleSet {
        RuleSet {
            id: key.into(),
            version,
            thresholds: self.thresholds.clone(),
        }
    }

    /// The bounds the conventions leave a country (C138 art. 2, 3 and 7).
    pub(crate) fn validate(&self) -> Result<(), ValidationError> {
        let err = |field: &str, rule: &str| Err(ValidationError::new(field, rule));
        let t = &self.thresholds;
        self.name.validate("content.name")?;
        if !(14..=18).contains(&t.minimum_age) {
            return err(
                "content.minimum_age",
                "must be between 14 and 18 (C138: never below 15, or 14 at first)",
            );
        }
        if t.light_work_min_age > t.minimum_age || t.light_work_min_age + 2 < t.minimum_age {
            return err(
                "content.light_work_min_age",
                "must be at most 2 years below the minimum age, and not above it (C138 art. 7)",
            );
        }
        if !(16..=18).contains(&t.hazardous_work_age) || t.hazardous_work_age < t.minimum_age {
            return err(
                "content.hazardous_work_age",
                "must be between 16 and 18, and not below the minimum age (C138 art. 3)",
            );
        }
        if t.light_work_max_hours > t.long_hours {
            return err(
                "content.light_work_max_hours",
                "must not exceed the long hours limit",
            );
        }
        // Hours past it are long: at 0, one hour a week made every child's work hazardous.
        if !(1..=168).contains(&t.long_hours) {
            return err("content.long_hours", "must be between 1 and 168");
        }
        validate_items("content.hazardous_work", &t.hazardous_work, false)?;
        validate_items("content.worst_forms", &self.worst_forms, false)?;
        if let Some(item) = self
            .worst_forms
            .iter()
            .find(|i| WorstForm::from_code(&i.code).is_none())
        {
            return Err(ValidationError::new(
                format!("content.worst_forms.{}", item.code),
                "not a worst form of C182 art. 3 (a)-(c): slavery_or_trafficking, debt_bondage, \
                 forced_labour, armed_conflict, sexual_exploitation or illicit_activities",
            ));
        }
        if t.follow_up_months.iter().any(|m| *m == 0 || *m > 120) {
            return err(
                "content.follow_up_months",
                "each must be between 1 and 120 months",
            );
        }
        if t.follow_up_yearly_until_age > 25 {
            return err("content.follow_up_yearly_until_age", "must be at most 25");
        }
        Ok(())
    }
}

/// A checklist's content; its id is the document's key and its version the version's number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecklistContent {
    pub name: Labels,
    pub items: Vec<ChecklistItem>,
}

/// A checklist at one version, as records answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checklist {
    pub id: String,
    pub version: u32,
    pub name: Labels,
    pub items: Vec<ChecklistItem>,
}

impl Checklist {
    pub fn has_item(&self, code: &str) -> bool {
        self.items.iter().any(|i| i.code == code)
    }

    pub fn item(&self, code: &str) -> Option<&ChecklistItem> {
        self.items.iter().find(|i| i.code == code)
    }
}

/// Where children are referred: the service types (codes of `ServiceKind`) and the providers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferralDirectory {
    pub services: Vec<Item>,
    #[serde(default)]
    pub providers: Vec<Provider>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provider {
    pub code: String,
    pub name: String,
    pub service: ServiceKind,
    /// The area code it serves, at any level (empty: the whole country).
    #[serde(default)]
    pub area: String,
    /// How to reach the service (an office's phone or address, not a person's).
    #[serde(default)]
    pub contact: String,
}

impl ReferralDirectory {
    pub fn provider(&self, code: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.code == code)
    }

    /// Providers of `service` that serve `area`.
    pub fn providers_for(&self, service: ServiceKind, area: &Area) -> Vec<&Provider> {
        self.providers
            .iter()
            .filter(|p| p.service == service)
            .filter(|p| p.area.is_empty() || area.codes().contains(&p.area.as_str()))
            .collect()
    }

    pub(crate) fn validate(&self) -> Result<(), ValidationError> {
        validate_items("content.services", &self.services, true)?;
        if let Some(item) = self
            .services
            .iter()
            .find(|i| ServiceKind::from_code(&i.code).is_none())
        {
            return Err(ValidationError::new(
                format!("content.services.{}", item.code),
                "not a service type",
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, p) in self.providers.iter().enumerate() {
            if !valid_code(&p.code) {
                return Err(ValidationError::new(
                    format!("content.providers.{i}.code"),
                    "a code is 1 to 64 printable ASCII characters without spaces",
                ));
            }
            if !seen.insert(p.code.as_str()) {
                return Err(ValidationError::new(
                    format!("content.providers.{}", p.code),
                    "the same code appears twice",
                ));
            }
            if p.name.trim().is_empty() {
                return Err(ValidationError::new(
                    format!("content.providers.{}.name", p.code),
                    "must not be empty",
                ));
            }
        }
        Ok(())
    }
}

/// One area and the areas inside it. A published tree's root is the country.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AreaNode {
    pub code: String,
    pub labels: Labels,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<AreaNode>,
    /// Where the area lies, for maps (the hub's console draws it under the points); optional.
    #[serde(default, skip_serializing_if = "Outline::is_empty")]
    pub outline: Outline,
}

/// An area's outline: rings of `[longitude, latitude]` points, in degrees, as GeoJSON orders
/// them (each ring closed or not; at least 3 points).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Outline(pub Vec<Vec<[f64; 2]>>);

// Validation keeps every coordinate finite, so equality is total.
impl Eq for Outline {}

impl Outline {
    /// The most points one area's outline may hold (a tree is synced to every phone).
    pub const MAX_POINTS: usize = 5_000;

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn validate(&self, field: &str) -> Result<(), ValidationError> {
        let points: usize = self.0.iter().map(Vec::len).sum();
        if points > Self::MAX_POINTS {
            return Err(ValidationError::new(
                field,
                format!("an outline has at most {} points", Self::MAX_POINTS),
            ));
        }
        for ring in &self.0 {
            if ring.len() < 3 {
                return Err(ValidationError::new(field, "a ring has at least 3 points"));
            }
            if ring
                .iter()
                .any(|[lon, lat]| !(-180.0..=180.0).contains(lon) || !(-90.0..=90.0).contains(lat))
            {
                return Err(ValidationError::new(
                    field,
                    "a point is [longitude, latitude] within -180..180 and -90..90",
                ));
            }
        }
        Ok(())
    }
}

impl AreaNode {
    pub fn new(code: &str, labels: Labels, children: Vec<AreaNode>) -> AreaNode {
        AreaNode {
            code: code.into(),
            labels,
            children,
            outline: Outline::default(),
        }
    }

    /// The nodes from this one down to the area with `code`, if it is in the tree.
    pub fn path(&self, code: &str) -> Option<Vec<&AreaNode>> {
        if self.code == code {
            return Some(vec![self]);
        }
        self.children.iter().find_map(|c| {
            let mut path = c.path(code)?;
            path.insert(0, self);
            Some(path)
        })
    }

    pub fn find(&self, code: &str) -> Option<&AreaNode> {
        self.path(code)?.pop()
    }

    /// The level of an area of this tree (the root is the country).
    pub fn level_of(&self, code: &str) -> Option<AreaLevel> {
        AreaLevel::ALL.get(self.path(code)?.len() - 1).copied()
    }

    /// The full area (country to community) of a community of this tree.
    pub fn area_of(&self, community: &str) -> Option<Area> {
        match self.path(community)?.as_slice() {
            [c, r, d, m] => Some(Area::new(&c.code, &r.code, &d.code, &m.code)),
            _ => None,
        }
    }

    /// Sets the levels of `area` above `level` to those of the tree's node found at that
    /// level under the code `area` holds there; whether it was found there.
    pub fn fill_above(&self, area: &mut Area, level: AreaLevel) -> bool {
        let depth = AreaLevel::ALL.iter().position(|l| *l == level).unwrap_or(0);
        let Some(path) = self.path(area.code_at(level)) else {
            return false;
        };
        if path.len() != depth + 1 {
            return false;
        }
        let codes: Vec<String> = path.iter().map(|node| node.code.clone()).collect();
        for (at, code) in AreaLevel::ALL.iter().zip(codes) {
            area.set_code_at(*at, code);
        }
        true
    }

    /// Checks that an area's codes are a path of this tree, each inside the one above.
    pub fn check(&self, area: &Area, field: &str) -> Result<(), ValidationError> {
        let mut node = self;
        for (i, (level, code)) in AreaLevel::ALL.iter().zip(area.codes()).enumerate() {
            let found = if i == 0 {
                (node.code == code).then_some(node)
            } else {
                node.children.iter().find(|c| c.code == code)
            };
            let Some(found) = found else {
                let rule = match level {
                    AreaLevel::Country => "not the country of the administrative areas",
                    _ => "not an area inside the level above in the administrative areas",
                };
                return Err(ValidationError::new(
                    format!("{field}.{}", level.as_str()),
                    rule,
                ));
            };
            node = found;
        }
        Ok(())
    }

    pub(crate) fn validate(&self) -> Result<(), ValidationError> {
        fn walk<'a>(
            node: &'a AreaNode,
            depth: usize,
            seen: &mut BTreeSet<&'a str>,
        ) -> Result<(), ValidationError> {
            let Some(level) = AreaLevel::ALL.get(depth) else {
                return Err(ValidationError::new(
                    "content",
                    "areas go four levels deep at most: country, region, district, community",
                ));
            };
            if !valid_code(&node.code) {
                return Err(ValidationError::new(
                    format!("content.{}", level.as_str()),
                    "a code is 1 to 64 printable ASCII characters without spaces",
                ));
            }
            if !seen.insert(&node.code) {
                return Err(ValidationError::new(
                    format!("content.{}", node.code),
                    "the same code appears twice in the tree",
                ));
            }
            node.labels
                .validate(&format!("content.{}.labels", node.code))?;
            node.outline
                .validate(&format!("content.{}.outline", node.code))?;
            node.children
                .iter()
                .try_for_each(|c| walk(c, depth + 1, seen))
        }
        walk(self, 0, &mut BTreeSet::new())
    }
}

/// An area code assigned to a user, at the level the area tree of its country gives it: the
/// user covers the records of that country whose area has this code at this level (a community
/// code matches only the record's community, a district code its district, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AreaGrant {
    pub country: String,
    pub level: AreaLevel,
    pub code: String,
}

impl AreaGrant {
    pub fn covers(&self, area: &Area) -> bool {
        area.country == self.country && area.code_at(self.level) == self.code
    }
}

/// A reference data file as `vigie reference publish` reads it: the key (`CI`, a checklist's
/// id, `default`) and one content, named by its type, e.g.
/// `{"key": "CI", "administrative_areas": {"code": "CI", "labels": {...}, "children": [...]}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferenceFile {
    pub key: String,
    #[serde(flatten)]
    pub content: ReferenceContent,
}

/// A JSON value read only to find a name given twice in one of its objects (serde_json keeps
/// the last, unsaid).
struct NoNameTwice;

impl<'de> Deserialize<'de> for NoNameTwice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoNameTwice)
    }
}

impl<'de> serde::de::Visitor<'de> for NoNameTwice {
    type Value = NoNameTwice;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        let mut seen = BTreeSet::new();
        while let Some(name) = map.next_key::<String>()? {
            if !seen.insert(name) {
                return Err(serde::de::Error::custom("a name appears twice"));
            }
            map.next_value::<NoNameTwice>()?;
        }
        Ok(NoNameTwice)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<NoNameTwice>()?.is_some() {}
        Ok(NoNameTwice)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(NoNameTwice)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(NoNameTwice)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(NoNameTwice)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(NoNameTwice)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(NoNameTwice)
    }
    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(NoNameTwice)
    }
}

/// The longest label or name a reference file may give (a checklist's question, a provider's
/// name), in characters: a line of a form, not a page.
pub const MAX_LABEL_CHARS: usize = 500;

/// Every text a new version shows on phones and the console — labels, names, a provider's
/// contact — on one line of at most `MAX_LABEL_CHARS`, with no control, hidden or text-direction
/// character (a label reversed or broken in every list, a NUL in an export), as a record's
/// names are. Checked where a file is published (`ReferenceFile::parse`), not where versions
/// already published are read: a hub or a phone keeps every version it was given in force.
fn texts_on_one_line(value: &serde_json::Value, path: &str) -> Result<(), ValidationError> {
    use crate::domain::validation::is_one_line;
    let refused = |field: &str| {
        ValidationError::new(
            field,
            format!(
                "must be at most {MAX_LABEL_CHARS} characters on one line, without control or \
                 text-direction characters"
            ),
        )
    };
    match value {
        serde_json::Value::Object(map) => {
            for (name, inner) in map {
                let field = join_path(path, name);
                match (name.as_str(), inner) {
                    ("labels" | "name", serde_json::Value::Object(texts)) => {
                        for (language, text) in texts {
                            let field = join_path(&field, language);
                            if !text
                                .as_str()
                                .is_some_and(|t| is_one_line(t, MAX_LABEL_CHARS))
                            {
                                return Err(refused(&field));
                            }
                        }
                    }
                    ("name" | "contact", serde_json::Value::String(text)) => {
                        if !is_one_line(text, MAX_LABEL_CHARS) {
                            return Err(refused(&field));
                        }
                    }
                    _ => texts_on_one_line(inner, &field)?,
                }
            }
            Ok(())
        }
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| texts_on_one_line(item, &join_path(path, &i.to_string()))),
        _ => Ok(()),
    }
}

/// The largest reference data file published (4 MiB: a country's area tree with its outlines
/// fits), from the console or the command line.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;

impl ReferenceFile {
    /// Parses a file's JSON as a hub publishes it, strictly: the error names the field that
    /// does not fit (`country_profile.minimum_age`), never quoting the file, and a field this
    /// software does not know, or a second content, is refused rather than dropped. (Devices
    /// read published versions leniently: a newer hub's content may carry fields they lack.)
    pub fn parse(json: &str) -> Result<ReferenceFile, ValidationError> {
        // Every phone of the country receives it and holds it in memory: a file of 700,000
        // sectors took a phone's sync to 680 MB.
        if json.len() > MAX_FILE_BYTES {
            return Err(ValidationError::new(
                "file",
                format!("must not exceed {MAX_FILE_BYTES} bytes"),
            ));
        }
        // A byte order mark (Windows Notepad, Excel) says nothing of the content.
        let json = json.strip_prefix('\u{feff}').unwrap_or(json);
        let value: serde_json::Value = serde_json::from_str(json).map_err(|e| unreadable(&e))?;
        // A name given twice in one object is read as its last value, unsaid (`"key": "CI",
        // "key": "GH"` published under GH): refused, where it is.
        serde_json::from_str::<NoNameTwice>(json).map_err(|e| {
            let (line, column) = (e.line(), e.column());
            ValidationError::new(
                "file",
                format!(
                    "not a reference data file: a name appears twice in one object, at line {line}, column {column}"
                ),
            )
        })?;
        let Some(object) = value.as_object() else {
            return Err(ValidationError::new(
                "file",
                "not a reference data file: not an object holding a key and a content",
            ));
        };
        let mut types = Vec::new();
        for name in object.keys() {
            if name == "key" {
                continue;
            }
            match ReferenceType::from_code(name) {
                Some(ty) if ty != ReferenceType::Unknown => types.push(name.as_str()),
                _ => return Err(ValidationError::new(name.as_str(), "unknown field")),
            }
        }
        let content_name = match types.as_slice() {
            [one] => *one,
            [] => {
                return Err(ValidationError::new(
                    "file",
                    "not a reference data file: no content (country_profile, checklist, sectors, referral_services or administrative_areas)",
                ));
            }
            [_, second, ..] => {
                return Err(ValidationError::new(
                    *second,
                    "a file holds one content: publish each in a file of its own",
                ));
            }
        };
        let Some(key) = object.get("key") else {
            return Err(ValidationError::new("key", "missing"));
        };
        let Some(key) = key.as_str() else {
            return Err(ValidationError::new("key", "must be text"));
        };
        let given = serde_json::json!({ content_name: object[content_name] });
        let content: ReferenceContent = serde_path_to_error::deserialize(&given).map_err(|e| {
            let mut path = e.path().to_string();
            let mut inner_error = e.into_inner();
            // A profile's thresholds are flattened into it, where serde loses the path: read
            // them alone to find it.
            if content_name == "country_profile"
                && path == content_name
                && let Err(inner) =
                    serde_path_to_error::deserialize::<_, Thresholds>(&object[content_name])
            {
                path = join_path(content_name, &inner.path().to_string());
                inner_error = inner.into_inner();
            }
            // A missing field is named by its own path, not its parent's.
            let message = inner_error.to_string();
            match missing_field(&message) {
                Some(field) => ValidationError::new(join_path(&path, field), "missing"),
                None => ValidationError::new(path, describe_shape(&inner_error)),
            }
        })?;
        let written = serde_json::to_value(&content).expect("reference content serializes");
        if let Some(unknown) = unknown_field(&given, &written, String::new()) {
            return Err(ValidationError::new(unknown, "unknown field"));
        }
        let file = ReferenceFile {
            key: key.to_string(),
            content,
        };
        if !valid_key(&file.key) {
            return Err(ValidationError::new(
                "key",
                "a key is 1 to 64 printable ASCII characters without spaces, '@' or '/'",
            ));
        }
        // The content's rules name their fields as published (`content.minimum_age`); in a
        // file the content sits under its type's name.
        file.content
            .validate()
            .map_err(|e| ValidationError::new(in_file(content_name, &e.field), e.rule))?;
        texts_on_one_line(&given, "")?;
        // An area tree is found by its key, and records and users name its root's code: a
        // tree published under another key would be looked up where it is not.
        if let ReferenceContent::AdministrativeAreas(tree) = &file.content
            && tree.code != file.key
        {
            return Err(ValidationError::new(
                "key",
                "an area tree's key is the code of its root (the country)",
            ));
        }
        Ok(file)
    }
}

/// `field` under `path`, a serde path where `.` is the root.
fn join_path(path: &str, field: &str) -> String {
    match (path, field) {
        ("" | ".", field) => field.to_string(),
        (path, "" | ".") => path.to_string(),
        (path, field) => format!("{path}.{field}"),
    }
}

/// The field a "missing field `x`" error names.
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")?
        .split_once('`')
        .map(|(field, _)| field)
}

/// A content rule's field (`content.x`) as it stands in a reference file (`<type>.x`).
pub(crate) fn in_file(content_name: &str, field: &str) -> String {
    match field.strip_prefix("content") {
        Some(rest) if rest.is_empty() || rest.starts_with('.') => format!("{content_name}{rest}"),
        _ => field.to_string(),
    }
}

/// Why a file is not JSON at all, and where, in words each language has (serde_json's are
/// English and may quote the file).
fn unreadable(e: &serde_json::Error) -> ValidationError {
    use serde_json::error::Category;
    let (line, column) = (e.line(), e.column());
    let rule = match e.classify() {
        Category::Eof => {
            format!("not a reference data file: it ends too soon, at line {line}, column {column}")
        }
        // serde_json's own words for it, which it gives no category of its own.
        Category::Syntax if e.to_string().starts_with("recursion limit") => {
            format!("not a reference data file: nested too deeply, at line {line}, column {column}")
        }
        Category::Syntax | Category::Io | Category::Data => {
            format!("not a reference data file: broken JSON, at line {line}, column {column}")
        }
    };
    ValidationError::new("file", rule)
}

/// What a value does not fit, without quoting it, in words each language has: serde's name
/// the Rust type expected (`u32`, `struct Sector`). A rule of the content's own (a breach
/// answer) is its own words.
fn describe_shape(e: &serde_json::Error) -> String {
    let message = e.to_string();
    if message.starts_with("unknown variant") {
        return "must be one of the codes this field takes".into();
    }
    if message.starts_with("invalid length") {
        return "has the wrong number of entries".into();
    }
    if message.starts_with("duplicate field") {
        return "is given twice".into();
    }
    let expected = match message.split_once(", expected ") {
        Some((kind, expected)) if kind.starts_with("invalid ") => expected,
        _ if message.starts_with("invalid ") => return "not a valid value for this field".into(),
        _ => return message,
    };
    let unsigned = ["u8", "u16", "u32", "u64", "usize"];
    let signed = ["i8", "i16", "i32", "i64", "isize"];
    match expected {
        "a sequence" => "must be a list",
        "a string" | "a borrowed string" | "a character" => "must be text",
        "a boolean" => "must be true or false",
        "f32" | "f64" => "must be a number",
        "a map" => "must be an object",
        e if e.starts_with("struct ") => "must be an object",
        e if unsigned.contains(&e) => "must be a whole number, 0 or more",
        e if signed.contains(&e) => "must be a whole number",
        _ => "not a valid value for this field",
    }
    .into()
}

/// The path of a field of `given` that reading and writing it back lost (a field this
/// software does not know), if any. Only the fields written back without them when empty (an
/// area's children and outline) may be missing because they hold their default: every other
/// field is always written, and a misspelt one (`follow_up_yearly_until_ages: 0`, meant to
/// stop yearly follow-ups) left the default in force without a word.
fn unknown_field(
    given: &serde_json::Value,
    written: &serde_json::Value,
    at: String,
) -> Option<String> {
    use serde_json::Value;
    let join = |name: &str| {
        if at.is_empty() {
            name.to_string()
        } else {
            format!("{at}.{name}")
        }
    };
    match (given, written) {
        (Value::Object(given), Value::Object(written)) => {
            given
                .iter()
                .find_map(|(name, value)| match written.get(name) {
                    Some(w) => unknown_field(value, w, join(name)),
                    None if SKIPPED_WHEN_EMPTY.contains(&name.as_str()) && is_default(value) => {
                        None
                    }
                    None => Some(join(name)),
                })
        }
        (Value::Array(given), Value::Array(written)) if given.len() == written.len() => given
            .iter()
            .zip(written)
            .enumerate()
            .find_map(|(i, (g, w))| unknown_field(g, w, join(&i.to_string()))),
        _ => None,
    }
}

/// The fields written back only when they hold something (`skip_serializing_if`).
const SKIPPED_WHEN_EMPTY: [&str; 2] = ["children", "outline"];

fn is_default(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

impl ReferenceType {
    /// The key used where a country has none of its own.
    pub fn default_key(self) -> &'static str {
        match self {
            ReferenceType::CountryProfile => DEFAULT_PROFILE,
            _ => "default",
        }
    }
}

/// The key of the built-in profile; also the id of the rule set it makes.
pub const DEFAULT_PROFILE: &str = "ilo-default";

/// One version's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceContent {
    CountryProfile(CountryProfile),
    Checklist(ChecklistContent),
    Sectors(Vec<Item>),
    ReferralServices(ReferralDirectory),
    AdministrativeAreas(AreaNode),
}

impl ReferenceContent {
    pub fn reference_type(&self) -> ReferenceType {
        match self {
            ReferenceContent::CountryProfile(_) => ReferenceType::CountryProfile,
            ReferenceContent::Checklist(_) => ReferenceType::Checklist,
            ReferenceContent::Sectors(_) => ReferenceType::Sectors,
            ReferenceContent::ReferralServices(_) => ReferenceType::ReferralServices,
            ReferenceContent::AdministrativeAreas(_) => ReferenceType::AdministrativeAreas,
        }
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        match self {
            ReferenceContent::CountryProfile(p) => p.validate(),
            ReferenceContent::Checklist(c) => {
                c.name.validate("content.name")?;
                validate_checklist_items("content.items", &c.items)
            }
            ReferenceContent::Sectors(s) => validate_items("content", s, true),
            ReferenceContent::ReferralServices(r) => r.validate(),
            ReferenceContent::AdministrativeAreas(a) => a.validate(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Versions a record was captured with

/// A reference version: `key@version` (`CI@2`, `ilo-default@1`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pin {
    pub key: String,
    pub version: u32,
}

impl Pin {
    pub fn new(key: &str, version: u32) -> Pin {
        Pin {
            key: key.into(),
            version,
        }
    }

    /// Parses `key@version` (the form of a classification's `rule_set`).
    pub fn parse(s: &str) -> Option<Pin> {
        let (key, version) = s.rsplit_once('@')?;
        Some(Pin::new(key, version.parse().ok()?)).filter(|p| valid_key(&p.key))
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.key, self.version)
    }
}

impl Serialize for Pin {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Pin {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Pin, D::Error> {
        let s = String::deserialize(d)?;
        Pin::parse(&s).ok_or_else(|| serde::de::Error::custom("not a reference version"))
    }
}

/// The reference versions a record was captured with. Set when the record is created and never
/// changed after (the store keeps them through every update). A version left unset is the
/// built-in one: records written before reference data was published were checked against it.
///
/// Apps see it as `ReferenceVersions`, each version as its `key@version` text (read-only: the
/// store sets it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "uniffi",
    derive(uniffi::Record),
    uniffi(name = "ReferenceVersions")
)]
pub struct ReferencePins {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub country_profile: Option<Pin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub sectors: Option<Pin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub referral_services: Option<Pin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub administrative_areas: Option<Pin>,
}

impl ReferencePins {
    pub fn is_empty(&self) -> bool {
        *self == ReferencePins::default()
    }

    pub fn get(&self, ty: ReferenceType) -> Option<&Pin> {
        match ty {
            ReferenceType::CountryProfile => self.country_profile.as_ref(),
            ReferenceType::Sectors => self.sectors.as_ref(),
            ReferenceType::ReferralServices => self.referral_services.as_ref(),
            ReferenceType::AdministrativeAreas => self.administrative_areas.as_ref(),
            ReferenceType::Checklist | ReferenceType::Unknown => None,
        }
    }

    pub(crate) fn slot(&mut self, ty: ReferenceType) -> Option<&mut Option<Pin>> {
        match ty {
            ReferenceType::CountryProfile => Some(&mut self.country_profile),
            ReferenceType::Sectors => Some(&mut self.sectors),
            ReferenceType::ReferralServices => Some(&mut self.referral_services),
            ReferenceType::AdministrativeAreas => Some(&mut self.administrative_areas),
            ReferenceType::Checklist | ReferenceType::Unknown => None,
        }
    }
}

/// The document field holding a record's pins.
pub(crate) const PINS_FIELD: &str = "captured_with";

pub(crate) fn unknown_version(ty: ReferenceType) -> ValidationError {
    ValidationError::new(
        format!("{PINS_FIELD}.{}", ty.as_str()),
        "reference version not known on this device: sync with the hub first",
    )
}

// ---------------------------------------------------------------------------------------------
// Published versions

/// One version as published: its content (JSON of a `ReferenceContent`) and when.
///
/// The content is kept as text: a published version never changes, so nothing in it needs
/// merging, and a device that does not know a newer content format still stores and syncs the
/// document (it only leaves that version unused). A content that fits one text is `content`
/// whole; a longer one (a country's tree with outlines) is cut into texts (`pieces`), spread
/// over as many documents as its size needs (`part` of `parts`, from 1), each within the bounds
/// on a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub published_at: DateTime<Utc>,
    /// The whole content, or empty when it is in `pieces`.
    pub content: String,
    /// This part's run of a long content, by their order from 0 (a map: records hold maps).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pieces: BTreeMap<u32, String>,
    /// Which part this is (from 1), when the content is in `parts` documents; 0 otherwise.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub part: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub parts: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Published {
    /// The most bytes (so characters) of one text of a published version: a document's
    /// `max_text_chars`.
    pub const PIECE_BYTES: usize = 32 * 1024;
    /// The most bytes of content one document holds (well within a document's 2 MiB).
    pub const PART_BYTES: usize = 40 * Self::PIECE_BYTES;

    /// The content as one version (a single document's), when it fits one text.
    pub fn new(content: &ReferenceContent, at: DateTime<Utc>) -> Published {
        Published {
            published_at: at,
            content: serde_json::to_string(content).expect("reference content serializes"),
            pieces: BTreeMap::new(),
            part: 0,
            parts: 0,
        }
    }

    /// The content as the parts of one version, one per document: a single part holding the
    /// whole text when it fits one, else runs of pieces of at most `PIECE_BYTES`, at most
    /// `PART_BYTES` a part.
    pub fn split(content: &ReferenceContent, at: DateTime<Utc>) -> Vec<Published> {
        let json = serde_json::to_string(content).expect("reference content serializes");
        if json.chars().count() <= Self::PIECE_BYTES {
            return vec![Published::new(content, at)];
        }
        let pieces = cut(&json, Self::PIECE_BYTES);
        let per_part = Self::PART_BYTES / Self::PIECE_BYTES;
        let parts = pieces.len().div_ceil(per_part) as u32;
        pieces
            .chunks(per_part)
            .enumerate()
            .map(|(i, run)| Published {
                published_at: at,
                content: String::new(),
                pieces: (0..).zip(run.iter().cloned()).collect(),
                part: i as u32 + 1,
                parts,
            })
            .collect()
    }

    /// Whether this holds a whole version (not one part of several).
    pub fn is_whole(&self) -> bool {
        self.parts == 0
    }

    /// The content, if this holds a whole version and this software knows its format.
    pub fn content(&self) -> Option<ReferenceContent> {
        if !self.is_whole() {
            return None;
        }
        serde_json::from_str(&self.content).ok()
    }

    /// The content of a version from all its parts, in any order (none if one is missing, or
    /// the format is unknown).
    pub fn assemble<'a>(
        parts: impl IntoIterator<Item = &'a Published>,
    ) -> Option<ReferenceContent> {
        let mut parts: Vec<&Published> = parts.into_iter().collect();
        parts.sort_by_key(|p| p.part);
        parts.dedup_by_key(|p| p.part);
        let count = parts.first()?.parts;
        if count == 0 {
            return parts.first()?.content();
        }
        if parts.len() != count as usize
            || parts
                .iter()
                .enumerate()
                .any(|(i, p)| p.part != i as u32 + 1 || p.parts != count)
        {
            return None;
        }
        let mut json = String::new();
        for piece in parts.iter().flat_map(|p| p.pieces.values()) {
            json.push_str(piece);
        }
        serde_json::from_str(&json).ok()
    }
}

/// `text` cut into runs of at most `bytes` bytes (so as many characters at most), each ending
/// on a character's boundary.
fn cut(text: &str, bytes: usize) -> Vec<String> {
    let mut runs = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = bytes.min(rest.len());
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (run, after) = rest.split_at(end);
        runs.push(run.to_string());
        rest = after;
    }
    runs
}

/// Keys name documents and appear in pins (`key@version`) and error fields.
pub(crate) fn valid_key(key: &str) -> bool {
    valid_code(key) && !key.contains(['@', '/'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_read_and_write_as_key_at_version() {
        let pin = Pin::parse("CI@12").unwrap();
        assert_eq!(pin, Pin::new("CI", 12));
        assert_eq!(pin.to_string(), "CI@12");
        assert_eq!(
            Pin::parse("ilo-default@1"),
            Some(Pin::new("ilo-default", 1))
        );
        assert_eq!(Pin::parse("CI"), None);
        assert_eq!(Pin::parse("@1"), None);
        assert_eq!(Pin::parse("CI@x"), None);
        let pins = ReferencePins {
            country_profile: Some(pin),
            ..Default::default()
        };
        let json = serde_json::to_value(&pins).unwrap();
        assert_eq!(json, serde_json::json!({"country_profile": "CI@12"}));
        assert_eq!(serde_json::from_value::<ReferencePins>(json).unwrap(), pins);
    }

    #[test]
    fn a_file_past_its_size_is_refused_unread() {
        let sectors: Vec<String> = (0..200_000)
            .map(|i| format!("{{\"code\": \"s{i}\", \"labels\": {{\"fr\": \"Secteur {i}\"}}}}"))
            .collect();
        let file = format!(
            "{{\"key\": \"default\", \"sectors\": [{}]}}",
            sectors.join(",")
        );
        assert!(file.len() > MAX_FILE_BYTES);
        let refused = ReferenceFile::parse(&file).unwrap_err();
        assert_eq!(refused.field, "file");
        assert!(refused.rule.contains("must not exceed"), "{refused}");
    }
}

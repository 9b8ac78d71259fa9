//! Reference data the records are checked against: country profiles (the classification rules),
//! checklists, sectors, referral services and providers, administrative areas.
//!
//! The product ships a built-in set (`ReferenceData::builtin`, from the ILO conventions). A hub
//! publishes more as documents (`ReferenceDocument`, one per type and key) that sync to every
//! device. A published version is never changed: a document keeps every version it ever had, and
//! a record remembers the versions it was captured with (`ReferencePins`), so a record captured
//! under CI@1 keeps being classified and validated with CI@1 after CI@2 arrives.
//!
//! Labels are maps from a language code to text: a new language is new data, not new code.

use crate::classify::RuleSet;
use crate::error::ValidationError;
use crate::model::{Area, ChildCase, Record, RecordKind, ServiceKind, Version};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Labels and coded items

/// Texts by language code (`fr`, `en`, `es`, `sw`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Labels(pub BTreeMap<String, String>);

impl Labels {
    /// Languages tried, in order, after the one asked for: the product's own two.
    pub const FALLBACK: [&'static str; 2] = ["fr", "en"];

    pub fn fr_en(fr: &str, en: &str) -> Labels {
        Labels::default().with("fr", fr).with("en", en)
    }

    pub fn with(mut self, language: &str, text: &str) -> Labels {
        self.insert(language, text);
        self
    }

    pub fn insert(&mut self, language: &str, text: &str) {
        self.0
            .insert(language.to_ascii_lowercase(), text.to_string());
    }

    /// The text in `language` (`fr-CI` also finds `fr`), else French, else English.
    pub fn get(&self, language: &str) -> Option<&str> {
        let language = language.to_ascii_lowercase();
        let primary = language.split(['-', '_']).next().unwrap_or_default();
        [language.as_str(), primary]
            .into_iter()
            .chain(Self::FALLBACK)
            .find_map(|l| self.0.get(l).filter(|t| !t.trim().is_empty()))
            .map(String::as_str)
    }

    pub fn languages(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    fn validate(&self, field: &str) -> Result<(), ValidationError> {
        if !self.0.values().any(|t| !t.trim().is_empty()) {
            return Err(ValidationError::new(
                field,
                "at least one label is required",
            ));
        }
        let well_formed = |l: &str| {
            (2..=16).contains(&l.len())
                && l.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                && !l.starts_with('-')
        };
        if !self.0.keys().all(|l| well_formed(l)) {
            return Err(ValidationError::new(
                field,
                "a language code is lowercase letters and hyphens (fr, en, sw)",
            ));
        }
        Ok(())
    }
}

/// A code with its labels: a sector, a checklist item, a hazard, a worst form, a service type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub code: String,
    pub labels: Labels,
}

impl Item {
    pub fn new(code: &str, fr: &str, en: &str) -> Item {
        Item {
            code: code.into(),
            labels: Labels::fr_en(fr, en),
        }
    }

    /// The label in `language`, with the fallbacks of `Labels::get`, else the code itself.
    pub fn label(&self, language: &str) -> &str {
        self.labels.get(language).unwrap_or(&self.code)
    }
}

pub type Sector = Item;
pub type ChecklistItem = Item;

/// Codes are named in error fields and used as keys: short, printable ASCII, no spaces.
fn valid_code(code: &str) -> bool {
    !code.is_empty() && code.len() <= 64 && code.chars().all(|c| c.is_ascii_graphic())
}

fn validate_items(field: &str, items: &[Item], required: bool) -> Result<(), ValidationError> {
    if required && items.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    let mut seen = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        if !valid_code(&item.code) {
            return Err(ValidationError::new(
                format!("{field}.{i}.code"),
                "a code is 1 to 64 printable ASCII characters without spaces",
            ));
        }
        if !seen.insert(item.code.as_str()) {
            return Err(ValidationError::new(
                format!("{field}.{}", item.code),
                "the same code appears twice",
            ));
        }
        item.labels
            .validate(&format!("{field}.{}.labels", item.code))?;
    }
    Ok(())
}

/// The snake_case name serde gives a unit variant (the code used in documents).
fn code_of<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn parse_code<T: serde::de::DeserializeOwned>(code: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(code.to_string())).ok()
}

// ---------------------------------------------------------------------------------------------
// Contents

/// What a country sets within the ILO conventions (C138, C182): ages, hours, its hazardous work
/// list, the worst forms, and how cases are followed up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountryProfile {
    pub name: Labels,
    /// C138 minimum age for admission to employment (15, or 14 at first in a developing country).
    pub minimum_age: u32,
    /// Light work is allowed from this age (13, or 12 where the minimum age is 14).
    pub light_work_min_age: u32,
    /// Light work beyond this many hours a week is no longer light.
    pub light_work_max_hours: u32,
    /// Hazardous work is forbidden below this age (18; 16 exceptionally).
    pub hazardous_work_age: u32,
    /// Hours a week above which work is hazardous for a child (long hours, R190).
    pub long_hours: u32,
    pub night_work_is_hazardous: bool,
    /// The national hazardous work list (codes a child case's `hazards` may hold).
    pub hazardous_work: Vec<Item>,
    /// C182 art. 3 (a)–(c), by the codes of `WorstForm`.
    #[serde(default)]
    pub worst_forms: Vec<Item>,
    /// Follow-up visits after remediation, in months after it.
    pub follow_up_months: Vec<u32>,
    /// Then yearly while the child is younger than this age.
    pub follow_up_yearly_until_age: u32,
}

impl CountryProfile {
    /// The profile the product ships: the ILO conventions' own thresholds, which
    /// `RuleSet::ilo_default` (ilo-default@1) encodes.
    pub fn ilo_default() -> CountryProfile {
        let mut profile = CountryProfile::from_rule_set(&RuleSet::ilo_default());
        profile.name = Labels::fr_en(
            "Profil par défaut (conventions de l'OIT)",
            "Default profile (ILO conventions)",
        );
        profile
    }

    /// A profile holding a rule set's thresholds and lists, with the C182 worst forms.
    pub fn from_rule_set(rules: &RuleSet) -> CountryProfile {
        CountryProfile {
            name: Labels::default().with("en", &rules.id),
            minimum_age: rules.minimum_age,
            light_work_min_age: rules.light_work_min_age,
            light_work_max_hours: rules.light_work_max_hours,
            hazardous_work_age: rules.hazardous_work_age,
            long_hours: rules.long_hours,
            night_work_is_hazardous: rules.night_work_is_hazardous,
            hazardous_work: rules.hazardous_work.clone(),
            worst_forms: c182_worst_forms(),
            follow_up_months: rules.follow_up_months.clone(),
            follow_up_yearly_until_age: rules.follow_up_yearly_until_age,
        }
    }

    /// The rule set the classifier applies, named `key@version`.
    pub fn rule_set(&self, key: &str, version: u32) -> RuleSet {
        RuleSet {
            id: key.into(),
            version,
            minimum_age: self.minimum_age,
            light_work_min_age: self.light_work_min_age,
            light_work_max_hours: self.light_work_max_hours,
            hazardous_work_age: self.hazardous_work_age,
            long_hours: self.long_hours,
            night_work_is_hazardous: self.night_work_is_hazardous,
            hazardous_work: self.hazardous_work.clone(),
            follow_up_months: self.follow_up_months.clone(),
            follow_up_yearly_until_age: self.follow_up_yearly_until_age,
        }
    }

    /// The bounds the conventions leave a country (C138 art. 2, 3 and 7).
    fn validate(&self) -> Result<(), ValidationError> {
        let err = |field: &str, rule: &str| Err(ValidationError::new(field, rule));
        self.name.validate("content.name")?;
        if !(14..=18).contains(&self.minimum_age) {
            return err(
                "content.minimum_age",
                "must be between 14 and 18 (C138: never below 15, or 14 at first)",
            );
        }
        if self.light_work_min_age > self.minimum_age
            || self.light_work_min_age + 2 < self.minimum_age
        {
            return err(
                "content.light_work_min_age",
                "must be at most 2 years below the minimum age, and not above it (C138 art. 7)",
            );
        }
        if !(16..=18).contains(&self.hazardous_work_age)
            || self.hazardous_work_age < self.minimum_age
        {
            return err(
                "content.hazardous_work_age",
                "must be between 16 and 18, and not below the minimum age (C138 art. 3)",
            );
        }
        if self.light_work_max_hours > self.long_hours {
            return err(
                "content.light_work_max_hours",
                "must not exceed the long hours limit",
            );
        }
        if self.long_hours > 168 {
            return err("content.long_hours", "must be between 0 and 168");
        }
        validate_items("content.hazardous_work", &self.hazardous_work, false)?;
        validate_items("content.worst_forms", &self.worst_forms, false)?;
        if let Some(item) = self
            .worst_forms
            .iter()
            .find(|i| parse_code::<crate::model::WorstForm>(&i.code).is_none())
        {
            return Err(ValidationError::new(
                format!("content.worst_forms.{}", item.code),
                "not a worst form of C182 art. 3 (a)-(c)",
            ));
        }
        if self.follow_up_months.iter().any(|m| *m == 0 || *m > 120) {
            return err(
                "content.follow_up_months",
                "each must be between 1 and 120 months",
            );
        }
        if self.follow_up_yearly_until_age > 25 {
            return err("content.follow_up_yearly_until_age", "must be at most 25");
        }
        Ok(())
    }
}

fn c182_worst_forms() -> Vec<Item> {
    use crate::model::WorstForm::*;
    [
        (
            SlaveryOrTrafficking,
            "Esclavage, vente et traite d'enfants",
            "Slavery, sale and trafficking of children",
        ),
        (DebtBondage, "Servitude pour dettes", "Debt bondage"),
        (ForcedLabour, "Travail forcé", "Forced labour"),
        (
            ArmedConflict,
            "Recrutement pour des conflits armés",
            "Recruitment for armed conflict",
        ),
        (
            SexualExploitation,
            "Prostitution et pornographie",
            "Prostitution and pornography",
        ),
        (
            IllicitActivities,
            "Activités illicites (trafic de drogue)",
            "Illicit activities (drug trafficking)",
        ),
    ]
    .iter()
    .map(|(form, fr, en)| Item::new(&code_of(form), fr, en))
    .collect()
}

/// A checklist's content; its id is the document's key and its version the version's number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecklistContent {
    pub name: Labels,
    pub items: Vec<Item>,
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

    fn validate(&self) -> Result<(), ValidationError> {
        validate_items("content.services", &self.services, true)?;
        if let Some(item) = self
            .services
            .iter()
            .find(|i| parse_code::<ServiceKind>(&i.code).is_none())
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

/// The levels of an administrative area tree, from the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AreaLevel {
    Country,
    Region,
    District,
    Community,
}

impl AreaLevel {
    pub const ALL: [AreaLevel; 4] = [
        AreaLevel::Country,
        AreaLevel::Region,
        AreaLevel::District,
        AreaLevel::Community,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AreaLevel::Country => "country",
            AreaLevel::Region => "region",
            AreaLevel::District => "district",
            AreaLevel::Community => "community",
        }
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
            if ring.iter().any(|[lon, lat]| {
                !lon.is_finite()
                    || !lat.is_finite()
                    || !(-180.0..=180.0).contains(lon)
                    || !(-90.0..=90.0).contains(lat)
            }) {
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

    fn validate(&self) -> Result<(), ValidationError> {
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

impl ReferenceFile {
    /// Parses a file's JSON; the error says where it does not fit, never quoting it.
    pub fn parse(json: &str) -> Result<ReferenceFile, ValidationError> {
        let file: ReferenceFile = serde_json::from_str(json).map_err(|e| {
            ValidationError::new(
                "file",
                format!(
                    "not a reference data file ({{\"key\": ..., \"<type>\": ...}}): {}",
                    crate::error::describe_json_error(&e)
                ),
            )
        })?;
        if !valid_key(&file.key) {
            return Err(ValidationError::new(
                "key",
                "a key is 1 to 64 printable ASCII characters without spaces, '@' or '/'",
            ));
        }
        file.content.validate()?;
        Ok(file)
    }
}

/// The types of reference data a hub publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceType {
    CountryProfile,
    Checklist,
    Sectors,
    ReferralServices,
    AdministrativeAreas,
    /// A type published by a newer hub: kept and synced, not used.
    #[serde(other)]
    Unknown,
}

impl ReferenceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ReferenceType::CountryProfile => "country_profile",
            ReferenceType::Checklist => "checklist",
            ReferenceType::Sectors => "sectors",
            ReferenceType::ReferralServices => "referral_services",
            ReferenceType::AdministrativeAreas => "administrative_areas",
            ReferenceType::Unknown => "unknown",
        }
    }

    /// The key used where a country has none of its own.
    pub fn default_key(self) -> &'static str {
        match self {
            ReferenceType::CountryProfile => DEFAULT_PROFILE,
            _ => "default",
        }
    }
}

impl fmt::Display for ReferenceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
                validate_items("content.items", &c.items, true)
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferencePins {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_profile: Option<Pin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sectors: Option<Pin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral_services: Option<Pin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

    fn slot(&mut self, ty: ReferenceType) -> Option<&mut Option<Pin>> {
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

fn unknown_version(ty: ReferenceType) -> ValidationError {
    ValidationError::new(
        format!("{PINS_FIELD}.{}", ty.as_str()),
        "reference version not known on this device: sync with the hub first",
    )
}

// ---------------------------------------------------------------------------------------------
// The published document

/// One version as published: its content (JSON of a `ReferenceContent`) and when.
///
/// The content is kept as one string: a published version never changes, so nothing in it
/// needs merging, and a device that does not know a newer content format still stores and
/// syncs the document (it only leaves that version unused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub published_at: DateTime<Utc>,
    pub content: String,
}

impl Published {
    pub fn new(content: &ReferenceContent, at: DateTime<Utc>) -> Published {
        Published {
            published_at: at,
            content: serde_json::to_string(content).expect("reference content serializes"),
        }
    }

    /// The content, if this software knows its format.
    pub fn content(&self) -> Option<ReferenceContent> {
        serde_json::from_str(&self.content).ok()
    }
}

/// A reference document as a hub publishes it: every version of one type and key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceDocument {
    #[serde(skip)]
    pub id: Uuid,
    #[serde(skip)]
    pub version: Version,
    #[serde(rename = "type")]
    pub reference_type: ReferenceType,
    pub key: String,
    /// By version number. A version, once published, is never changed or removed.
    #[serde(default)]
    pub versions: BTreeMap<u32, Published>,
}

/// Keys name documents and appear in pins (`key@version`) and error fields.
fn valid_key(key: &str) -> bool {
    valid_code(key) && !key.contains(['@', '/'])
}

impl ReferenceDocument {
    pub fn new(reference_type: ReferenceType, key: &str) -> ReferenceDocument {
        ReferenceDocument {
            id: Self::id_for(reference_type, key),
            version: Version::default(),
            reference_type,
            key: key.into(),
            versions: BTreeMap::new(),
        }
    }

    /// The document's id, the same wherever and however often it is published: a UUID
    /// (version 8) from SHA-256 of the type and key.
    pub fn id_for(reference_type: ReferenceType, key: &str) -> Uuid {
        let digest = Sha256::new()
            .chain_update(b"vigie reference document\0")
            .chain_update(reference_type.as_str())
            .chain_update(b"/")
            .chain_update(key)
            .finalize();
        let bytes: [u8; 16] = digest[..16].try_into().expect("16 bytes");
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    }

    pub fn latest(&self) -> Option<u32> {
        self.versions.keys().next_back().copied()
    }

    pub fn content(&self, version: u32) -> Option<ReferenceContent> {
        self.versions.get(&version)?.content()
    }
}

impl Record for ReferenceDocument {
    const KIND: RecordKind = RecordKind::Reference;
    const TEXT_FIELDS: &'static [&'static str] = &[];
    // `versions` is not a collection: a version missing from a write is kept, never removed.
    const COLLECTIONS: &'static [&'static str] = &[];

    fn id(&self) -> Uuid {
        self.id
    }
    fn set_id(&mut self, id: Uuid) {
        self.id = id;
    }
    fn version(&self) -> &Version {
        &self.version
    }
    fn set_version(&mut self, version: Version) {
        self.version = version;
    }

    fn validate(&self, _reference: &ReferenceData) -> Result<(), ValidationError> {
        if self.reference_type == ReferenceType::Unknown {
            return Err(ValidationError::new("type", "unknown reference type"));
        }
        if !valid_key(&self.key) {
            return Err(ValidationError::new(
                "key",
                "a key is 1 to 64 printable ASCII characters without spaces, '@' or '/'",
            ));
        }
        if self.id != Self::id_for(self.reference_type, &self.key) {
            return Err(ValidationError::new(
                "id",
                "must be the id of the document's type and key",
            ));
        }
        for (number, published) in &self.versions {
            let field = format!("versions.{number}");
            if *number == 0 {
                return Err(ValidationError::new(field, "versions are numbered from 1"));
            }
            let Some(content) = published.content() else {
                return Err(ValidationError::new(field, "content is not reference data"));
            };
            if content.reference_type() != self.reference_type {
                return Err(ValidationError::new(
                    field,
                    "content is not of the document's type",
                ));
            }
            content
                .validate()
                .map_err(|e| ValidationError::new(format!("{field}.{}", e.field), e.rule))?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The catalog

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    content: ReferenceContent,
    /// From a published document (else built into the product or the store's configuration).
    published: bool,
}

/// Every reference version a store knows: the built-in ones and every version of every
/// published document. Records are checked against the versions they were captured with; new
/// records are captured with the latest version for their country.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceData {
    entries: BTreeMap<(ReferenceType, String), BTreeMap<u32, Entry>>,
    /// Every profile version as the classifier applies it.
    rule_sets: BTreeMap<(String, u32), RuleSet>,
    /// Every checklist version.
    checklists: Vec<Checklist>,
    /// The profile used for countries without one of their own.
    default_profile: String,
}

impl ReferenceData {
    fn empty(default_profile: &str) -> ReferenceData {
        ReferenceData {
            entries: BTreeMap::new(),
            rule_sets: BTreeMap::new(),
            checklists: Vec::new(),
            default_profile: default_profile.into(),
        }
    }

    /// Built-in reference data from parts: the sectors (as version 1), the checklists at their
    /// versions, and the rule set as the default profile.
    pub fn new(sectors: Vec<Sector>, checklists: Vec<Checklist>, rule_set: RuleSet) -> Self {
        let mut data = ReferenceData::empty(&rule_set.id);
        data.insert(
            ReferenceType::Sectors.default_key(),
            1,
            ReferenceContent::Sectors(sectors),
            false,
        );
        for c in checklists {
            data.insert(
                &c.id,
                c.version,
                ReferenceContent::Checklist(ChecklistContent {
                    name: c.name,
                    items: c.items,
                }),
                false,
            );
        }
        data.insert(
            &rule_set.id,
            rule_set.version,
            ReferenceContent::CountryProfile(CountryProfile::from_rule_set(&rule_set)),
            false,
        );
        data
    }

    /// The reference data that ships with the product.
    pub fn builtin() -> ReferenceData {
        let mut data = ReferenceData::empty(DEFAULT_PROFILE);
        data.insert(
            DEFAULT_PROFILE,
            1,
            ReferenceContent::CountryProfile(CountryProfile::ilo_default()),
            false,
        );
        data.insert(
            "default",
            1,
            ReferenceContent::Sectors(builtin::sectors()),
            false,
        );
        for (id, content) in builtin::checklists() {
            data.insert(id, 1, ReferenceContent::Checklist(content), false);
        }
        data.insert(
            "default",
            1,
            ReferenceContent::ReferralServices(ReferralDirectory {
                services: builtin::services(),
                providers: Vec::new(),
            }),
            false,
        );
        data
    }

    /// Adds a version to the data a store starts from (as if built in).
    pub fn with(mut self, key: &str, version: u32, content: ReferenceContent) -> ReferenceData {
        self.insert(key, version, content, false);
        self
    }

    /// A version already known is kept as it is: versions never change.
    fn insert(&mut self, key: &str, version: u32, content: ReferenceContent, published: bool) {
        let ty = content.reference_type();
        let versions = self.entries.entry((ty, key.to_string())).or_default();
        if versions.contains_key(&version) {
            return;
        }
        match &content {
            ReferenceContent::CountryProfile(p) => {
                self.rule_sets
                    .insert((key.to_string(), version), p.rule_set(key, version));
            }
            ReferenceContent::Checklist(c) => self.checklists.push(Checklist {
                id: key.into(),
                version,
                name: c.name.clone(),
                items: c.items.clone(),
            }),
            _ => {}
        }
        versions.insert(version, Entry { content, published });
    }

    /// Adds every version of a published document this software can read.
    pub fn add_published(&mut self, document: &ReferenceDocument) {
        if !valid_key(&document.key) {
            return;
        }
        for (version, published) in &document.versions {
            if let Some(content) = published.content()
                && content.reference_type() == document.reference_type
                && content.validate().is_ok()
            {
                self.insert(&document.key, *version, content, true);
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Any type

    /// The keys known for a type.
    pub fn keys(&self, ty: ReferenceType) -> Vec<&str> {
        self.entries
            .keys()
            .filter(|(t, _)| *t == ty)
            .map(|(_, k)| k.as_str())
            .collect()
    }

    pub fn versions(&self, ty: ReferenceType, key: &str) -> Vec<u32> {
        self.entries
            .get(&(ty, key.to_string()))
            .map(|v| v.keys().copied().collect())
            .unwrap_or_default()
    }

    pub fn latest_version(&self, ty: ReferenceType, key: &str) -> Option<u32> {
        self.versions(ty, key).last().copied()
    }

    pub fn content(&self, ty: ReferenceType, key: &str, version: u32) -> Option<&ReferenceContent> {
        Some(
            &self
                .entries
                .get(&(ty, key.to_string()))?
                .get(&version)?
                .content,
        )
    }

    /// Whether a version came from a published document (else it is built in).
    pub fn is_published(&self, ty: ReferenceType, key: &str, version: u32) -> bool {
        self.entries
            .get(&(ty, key.to_string()))
            .and_then(|v| v.get(&version))
            .is_some_and(|e| e.published)
    }

    /// The version a record in `country` is captured with now: the latest of the country's own,
    /// else the latest of the default key; none if neither exists.
    pub fn active_pin(&self, ty: ReferenceType, country: Option<&str>) -> Option<Pin> {
        let own = country.filter(|c| self.entries.contains_key(&(ty, c.to_string())));
        let key = match ty {
            ReferenceType::CountryProfile => own.unwrap_or(&self.default_profile),
            _ => own.unwrap_or(ty.default_key()),
        };
        Some(Pin::new(key, self.latest_version(ty, key)?))
    }

    /// What a record without a pin was checked against: the built-in version.
    fn builtin_pin(&self, ty: ReferenceType) -> Option<Pin> {
        let key = match ty {
            ReferenceType::CountryProfile => self.default_profile.as_str(),
            _ => ty.default_key(),
        };
        let versions = self.entries.get(&(ty, key.to_string()))?;
        let (version, _) = versions.iter().rev().find(|(_, e)| !e.published)?;
        Some(Pin::new(key, *version))
    }

    fn pinned(
        &self,
        ty: ReferenceType,
        pin: Option<&Pin>,
    ) -> Result<Option<&ReferenceContent>, ValidationError> {
        match pin {
            Some(pin) => self
                .content(ty, &pin.key, pin.version)
                .map(Some)
                .ok_or_else(|| unknown_version(ty)),
            None => Ok(self
                .builtin_pin(ty)
                .and_then(|p| self.content(ty, &p.key, p.version))),
        }
    }

    /// Sets the pins a new record is missing to the versions it is captured with now.
    pub(crate) fn pin_new<R: Record>(&self, record: &mut R) {
        let country = record.country().map(str::to_owned);
        if let Some(pins) = record.pins_mut() {
            for ty in R::PINNED {
                if let Some(slot) = pins.slot(*ty)
                    && slot.is_none()
                {
                    *slot = self.active_pin(*ty, country.as_deref());
                }
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Country profiles and rule sets

    pub fn country_profile(&self, key: &str, version: u32) -> Option<&CountryProfile> {
        match self.content(ReferenceType::CountryProfile, key, version)? {
            ReferenceContent::CountryProfile(p) => Some(p),
            _ => None,
        }
    }

    pub fn rule_set_at(&self, key: &str, version: u32) -> Option<&RuleSet> {
        self.rule_sets.get(&(key.to_string(), version))
    }

    /// The rule set new records of `country` are classified with.
    pub fn rule_set_for_country(&self, country: &str) -> &RuleSet {
        self.active_pin(ReferenceType::CountryProfile, Some(country))
            .and_then(|p| self.rule_set_at(&p.key, p.version))
            .unwrap_or_else(|| self.rule_set())
    }

    /// The latest default profile's rule set (for countries without a profile of their own).
    pub fn rule_set(&self) -> &RuleSet {
        self.rule_sets
            .range((self.default_profile.clone(), 0)..=(self.default_profile.clone(), u32::MAX))
            .next_back()
            .map(|(_, r)| r)
            .expect("the default profile is always known")
    }

    /// The rule set a case is classified with: the profile it was captured with; for a case
    /// captured before profiles were pinned, the one its classification names, else the
    /// built-in one.
    pub fn rule_set_of(&self, case: &ChildCase) -> Result<&RuleSet, ValidationError> {
        if let Some(pin) = &case.captured_with.country_profile {
            return self
                .rule_set_at(&pin.key, pin.version)
                .ok_or_else(|| unknown_version(ReferenceType::CountryProfile));
        }
        let named = case
            .classification
            .as_ref()
            .and_then(|c| Pin::parse(&c.rule_set))
            .and_then(|p| self.rule_set_at(&p.key, p.version));
        Ok(named
            .or_else(|| {
                let p = self.builtin_pin(ReferenceType::CountryProfile)?;
                self.rule_set_at(&p.key, p.version)
            })
            .unwrap_or_else(|| self.rule_set()))
    }

    // -----------------------------------------------------------------------------------------
    // Sectors

    /// The latest default sector list.
    pub fn sectors(&self) -> &[Sector] {
        self.active_pin(ReferenceType::Sectors, None)
            .and_then(|p| self.sectors_at(&p))
            .unwrap_or(&[])
    }

    pub fn sectors_at(&self, pin: &Pin) -> Option<&[Sector]> {
        match self.content(ReferenceType::Sectors, &pin.key, pin.version)? {
            ReferenceContent::Sectors(s) => Some(s),
            _ => None,
        }
    }

    pub fn has_sector(&self, code: &str) -> bool {
        self.sectors().iter().any(|s| s.code == code)
    }

    pub(crate) fn pinned_sectors(&self, pin: Option<&Pin>) -> Result<&[Sector], ValidationError> {
        Ok(match self.pinned(ReferenceType::Sectors, pin)? {
            Some(ReferenceContent::Sectors(s)) => s,
            _ => &[],
        })
    }

    // -----------------------------------------------------------------------------------------
    // Checklists

    pub fn checklist(&self, id: &str, version: u32) -> Option<&Checklist> {
        self.checklists
            .iter()
            .find(|c| c.id == id && c.version == version)
    }

    /// The version of a checklist new visits answer.
    pub fn latest_checklist(&self, id: &str) -> Option<&Checklist> {
        let version = self.latest_version(ReferenceType::Checklist, id)?;
        self.checklist(id, version)
    }

    /// Every version of every checklist.
    pub fn checklists(&self) -> &[Checklist] {
        &self.checklists
    }

    /// The ILO's 11 indicators of forced labour, as labelled items (codes of
    /// `ForcedLabourIndicator`).
    pub fn forced_labour_indicators(&self) -> Option<&Checklist> {
        self.latest_checklist(builtin::FORCED_LABOUR)
    }

    // -----------------------------------------------------------------------------------------
    // Referral services

    /// The latest directory for `country` (else the default one).
    pub fn referral_directory(&self, country: &str) -> Option<&ReferralDirectory> {
        let pin = self.active_pin(ReferenceType::ReferralServices, Some(country))?;
        self.referral_directory_at(&pin)
    }

    pub fn referral_directory_at(&self, pin: &Pin) -> Option<&ReferralDirectory> {
        match self.content(ReferenceType::ReferralServices, &pin.key, pin.version)? {
            ReferenceContent::ReferralServices(r) => Some(r),
            _ => None,
        }
    }

    pub(crate) fn pinned_referrals(
        &self,
        pin: Option<&Pin>,
    ) -> Result<Option<&ReferralDirectory>, ValidationError> {
        Ok(match self.pinned(ReferenceType::ReferralServices, pin)? {
            Some(ReferenceContent::ReferralServices(r)) => Some(r),
            _ => None,
        })
    }

    // -----------------------------------------------------------------------------------------
    // Administrative areas

    /// The latest area tree of `country`, if one was published.
    pub fn area_tree(&self, country: &str) -> Option<&AreaNode> {
        let version = self.latest_version(ReferenceType::AdministrativeAreas, country)?;
        self.area_tree_at(&Pin::new(country, version))
    }

    pub fn area_tree_at(&self, pin: &Pin) -> Option<&AreaNode> {
        match self.content(ReferenceType::AdministrativeAreas, &pin.key, pin.version)? {
            ReferenceContent::AdministrativeAreas(a) => Some(a),
            _ => None,
        }
    }

    /// The tree a record's area is checked against on the hub: the version it was captured
    /// with, else the latest of its country.
    pub fn area_tree_for(&self, pin: Option<&Pin>, country: &str) -> Option<&AreaNode> {
        match pin {
            Some(pin) => self.area_tree_at(pin),
            None => self.area_tree(country),
        }
    }

    /// Where an area code stands in the area tree in force (the latest version) of every
    /// country that has one: what a user assigned that code may see. A code in no tree grants
    /// nothing.
    pub fn grants_of(&self, code: &str) -> Vec<AreaGrant> {
        self.keys(ReferenceType::AdministrativeAreas)
            .into_iter()
            .filter_map(|key| self.area_tree(key))
            .filter_map(|tree| {
                Some(AreaGrant {
                    country: tree.code.clone(),
                    level: tree.level_of(code)?,
                    code: code.to_string(),
                })
            })
            .collect()
    }

    /// Checks an area against the tree a record was captured with (nothing to check when it
    /// was captured without one).
    pub(crate) fn check_area(
        &self,
        pin: Option<&Pin>,
        area: &Area,
        field: &str,
    ) -> Result<(), ValidationError> {
        match self.pinned(ReferenceType::AdministrativeAreas, pin)? {
            Some(ReferenceContent::AdministrativeAreas(tree)) => tree.check(area, field),
            _ => Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Built-in content

mod builtin {
    use super::{ChecklistContent, Item, Labels, code_of};
    use crate::model::{ForcedLabourIndicator, ServiceKind};

    pub(super) const FORCED_LABOUR: &str = "forced-labour";

    fn items(rows: &[(&str, &str, &str)]) -> Vec<Item> {
        rows.iter()
            .map(|(code, fr, en)| Item::new(code, fr, en))
            .collect()
    }

    pub(super) fn sectors() -> Vec<Item> {
        items(&[
            ("cocoa", "Cacao", "Cocoa"),
            ("mining", "Mines et carrières", "Mining and quarrying"),
            ("fishing", "Pêche", "Fishing"),
            ("domestic_work", "Travail domestique", "Domestic work"),
            ("construction", "Construction", "Construction"),
            ("brick_kiln", "Briqueterie", "Brick kilns"),
            ("textile", "Textile", "Textile"),
            ("street_vending", "Vente ambulante", "Street vending"),
            ("rubber", "Hévéa", "Rubber"),
            ("cotton", "Coton", "Cotton"),
            ("other", "Autre", "Other"),
        ])
    }

    pub(super) fn services() -> Vec<Item> {
        use ServiceKind::*;
        [
            (Education, "Éducation", "Education"),
            (Health, "Santé", "Health"),
            (SocialProtection, "Protection sociale", "Social protection"),
            (LegalOrPolice, "Justice ou police", "Legal or police"),
            (
                Vocational,
                "Formation professionnelle",
                "Vocational training",
            ),
        ]
        .iter()
        .map(|(kind, fr, en)| Item::new(&code_of(kind), fr, en))
        .collect()
    }

    pub(super) fn checklists() -> Vec<(&'static str, ChecklistContent)> {
        let labour_inspection = items(&[
            (
                "LI01",
                "Registre du personnel tenu à jour",
                "Staff register kept up to date",
            ),
            (
                "LI02",
                "Âge des travailleurs vérifié à l'embauche",
                "Workers' ages checked at hiring",
            ),
            (
                "LI03",
                "Contrats écrits remis aux travailleurs",
                "Written contracts given to workers",
            ),
            (
                "LI04",
                "Salaires payés à temps et en entier",
                "Wages paid on time and in full",
            ),
            ("LI05", "Bulletins de paie remis", "Pay slips issued"),
            (
                "LI06",
                "Durée du travail conforme",
                "Working hours within the law",
            ),
            (
                "LI07",
                "Repos hebdomadaire respecté",
                "Weekly rest respected",
            ),
            (
                "LI08",
                "Heures supplémentaires volontaires et payées",
                "Overtime voluntary and paid",
            ),
            (
                "LI09",
                "Pièces d'identité conservées par les travailleurs",
                "Workers keep their identity papers",
            ),
            (
                "LI10",
                "Liberté de quitter l'emploi",
                "Workers free to leave",
            ),
            (
                "LI11",
                "Aucune dette envers l'employeur",
                "No debt owed to the employer",
            ),
            (
                "LI12",
                "Équipements de protection fournis",
                "Protective equipment provided",
            ),
            (
                "LI13",
                "Produits dangereux stockés en sécurité",
                "Hazardous substances stored safely",
            ),
            (
                "LI14",
                "Aucun enfant affecté à des travaux dangereux",
                "No child assigned to hazardous work",
            ),
            (
                "LI15",
                "Eau potable et sanitaires disponibles",
                "Drinking water and toilets available",
            ),
            (
                "LI16",
                "Premiers secours disponibles",
                "First aid available",
            ),
            (
                "LI17",
                "Logement décent s'il est fourni",
                "Decent housing where provided",
            ),
            (
                "LI18",
                "Aucune violence ou menace signalée",
                "No violence or threats reported",
            ),
            (
                "LI19",
                "Représentation des travailleurs possible",
                "Workers can be represented",
            ),
            (
                "LI20",
                "Affichage des droits des travailleurs",
                "Workers' rights displayed",
            ),
        ]);
        let child_labour = items(&[
            (
                "CL01",
                "Enfants de moins de l'âge minimum au travail",
                "Children below the minimum age working",
            ),
            (
                "CL02",
                "Enfants au travail pendant les heures de classe",
                "Children working during school hours",
            ),
            (
                "CL03",
                "Enfants inscrits et assidus à l'école",
                "Children enrolled and attending school",
            ),
            (
                "CL04",
                "Heures des enfants au-delà des travaux légers",
                "Children's hours beyond light work",
            ),
            (
                "CL05",
                "Enfants au travail de nuit",
                "Children working at night",
            ),
            (
                "CL06",
                "Enfants portant des charges lourdes",
                "Children carrying heavy loads",
            ),
            (
                "CL07",
                "Enfants utilisant des outils tranchants",
                "Children using sharp tools",
            ),
            (
                "CL08",
                "Enfants exposés aux pesticides ou produits chimiques",
                "Children exposed to pesticides or chemicals",
            ),
            (
                "CL09",
                "Enfants au travail en hauteur ou sous terre",
                "Children working at heights or underground",
            ),
            (
                "CL10",
                "Enfants sans lien avec le ménage au travail",
                "Children unrelated to the household working",
            ),
            (
                "CL11",
                "Âges des travailleurs consignés",
                "Workers' ages recorded",
            ),
            (
                "CL12",
                "Comité communautaire informé",
                "Community child labour committee informed",
            ),
        ]);
        use ForcedLabourIndicator::*;
        let forced_labour = [
            (
                AbuseOfVulnerability,
                "Abus de vulnérabilité",
                "Abuse of vulnerability",
            ),
            (Deception, "Tromperie", "Deception"),
            (
                RestrictionOfMovement,
                "Restriction de la liberté de mouvement",
                "Restriction of movement",
            ),
            (Isolation, "Isolement", "Isolation"),
            (
                PhysicalAndSexualViolence,
                "Violences physiques et sexuelles",
                "Physical and sexual violence",
            ),
            (
                IntimidationAndThreats,
                "Intimidation et menaces",
                "Intimidation and threats",
            ),
            (
                RetentionOfIdentityDocuments,
                "Confiscation des documents d'identité",
                "Retention of identity documents",
            ),
            (
                WithholdingOfWages,
                "Retenue des salaires",
                "Withholding of wages",
            ),
            (DebtBondage, "Servitude pour dettes", "Debt bondage"),
            (
                AbusiveWorkingAndLivingConditions,
                "Conditions de travail et de vie abusives",
                "Abusive working and living conditions",
            ),
            (
                ExcessiveOvertime,
                "Heures supplémentaires excessives",
                "Excessive overtime",
            ),
        ]
        .iter()
        .map(|(indicator, fr, en)| Item::new(&code_of(indicator), fr, en))
        .collect();
        vec![
            (
                "labour-inspection",
                ChecklistContent {
                    name: Labels::fr_en("Inspection du travail", "Labour inspection"),
                    items: labour_inspection,
                },
            ),
            (
                "child-labour",
                ChecklistContent {
                    name: Labels::fr_en("Travail des enfants", "Child labour"),
                    items: child_labour,
                },
            ),
            (
                FORCED_LABOUR,
                ChecklistContent {
                    name: Labels::fr_en(
                        "Indicateurs du travail forcé (OIT)",
                        "ILO indicators of forced labour",
                    ),
                    items: forced_labour,
                },
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_profile_is_ilo_default_at_1() {
        let data = ReferenceData::builtin();
        assert_eq!(data.rule_set(), &RuleSet::ilo_default());
        assert_eq!(
            CountryProfile::ilo_default().rule_set(DEFAULT_PROFILE, 1),
            RuleSet::ilo_default()
        );
        assert!(CountryProfile::ilo_default().validate().is_ok());
        for (ty, key) in data.entries.keys() {
            for version in data.versions(*ty, key) {
                let content = data.content(*ty, key, version).unwrap();
                assert_eq!(content.validate(), Ok(()), "{ty}/{key}@{version}");
            }
        }
    }

    #[test]
    fn unknown_types_and_contents_still_read() {
        let json = serde_json::json!({"type": "school_calendar", "key": "CI", "versions": {
            "1": {"published_at": "2026-01-01T00:00:00Z", "content": "{\"school_calendar\":{}}"}
        }});
        let doc: ReferenceDocument = serde_json::from_value(json).unwrap();
        assert_eq!(doc.reference_type, ReferenceType::Unknown);
        assert_eq!(doc.latest(), Some(1));
        assert_eq!(doc.content(1), None);
        let mut data = ReferenceData::builtin();
        let before = data.clone();
        data.add_published(&doc);
        assert_eq!(data, before);
    }

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
    fn document_ids_are_stable_and_distinct() {
        let a = ReferenceDocument::id_for(ReferenceType::CountryProfile, "CI");
        assert_eq!(
            a,
            ReferenceDocument::id_for(ReferenceType::CountryProfile, "CI")
        );
        assert_ne!(
            a,
            ReferenceDocument::id_for(ReferenceType::CountryProfile, "BF")
        );
        assert_ne!(
            a,
            ReferenceDocument::id_for(ReferenceType::AdministrativeAreas, "CI")
        );
        assert_eq!(a.get_version_num(), 8);
    }
}

//! Reference data in one language: `ReferenceCatalog` wraps the core's `ReferenceData` (a
//! store's, with every version the hub published, or the built-in one) with the language its
//! labels are read in. Labels fall back as the core's do: the language asked for (`fr-CI` also
//! finds `fr`), then French, then English, then the code itself.
//!
//! A catalog is an immutable snapshot: its methods do not block. Ask the store for a new one
//! (`VigieStore.reference`) after a sync to see newly published versions.

use crate::error::{Result, VigieError};
use crate::store::VigieStore;
use std::sync::Arc;
use vigie_core::reference::{AreaNode, Item, ReferralDirectory};
use vigie_core::{
    Area, AreaLevel, ForcedLabourIndicator, Pin, ReferenceContent, ReferenceData, ReferencePins,
    ReferenceType, ServiceKind,
};

/// A code and its label in the catalog's language.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LabelledItem {
    pub code: String,
    pub label: String,
}

/// What a country sets within the ILO conventions (C138, C182), at one version.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CountryProfile {
    /// The profile's key (`CI`, or `ilo-default` where a country has none of its own) and
    /// version: `key@version` is what records' `captured_with.country_profile` name.
    pub key: String,
    pub version: i32,
    pub name: String,
    /// C138 minimum age for admission to employment.
    pub minimum_age: i32,
    pub light_work_min_age: i32,
    /// Light work beyond this many hours a week is no longer light.
    pub light_work_max_hours: i32,
    /// Hazardous work is forbidden below this age.
    pub hazardous_work_age: i32,
    /// Hours a week above which work is hazardous for a child.
    pub long_hours: i32,
    pub night_work_is_hazardous: bool,
    /// The national hazardous work list: the codes a child case's `hazards` may hold.
    pub hazardous_work: Vec<LabelledItem>,
    /// C182 art. 3 (a)–(c), by the codes of `WorstForm` (snake_case).
    pub worst_forms: Vec<LabelledItem>,
    /// Follow-ups after remediation, in months after it; then yearly until this age.
    pub follow_up_months: Vec<i32>,
    pub follow_up_yearly_until_age: i32,
}

/// A checklist at one version, labelled in the catalog's language.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LabelledChecklist {
    pub id: String,
    pub version: i32,
    pub name: String,
    pub items: Vec<LabelledChecklistItem>,
}

/// A checklist item, and the answer that records a breach of it: `No` for an item worded as a
/// rule kept ("Staff register kept up to date"), `Yes` for one worded as a fault found
/// ("Children below the minimum age working"). A visit's `breaches` lists the items so
/// answered.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LabelledChecklistItem {
    pub code: String,
    pub label: String,
    pub breach: vigie_core::Answer,
}

/// One of the ILO's 11 indicators of forced labour: the key of `Visit.forced_labour`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ForcedLabourItem {
    pub indicator: ForcedLabourIndicator,
    /// The snake_case code (as in indicators and exports).
    pub code: String,
    pub label: String,
}

/// A type of service children are referred to.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ReferralService {
    pub service: ServiceKind,
    pub label: String,
}

/// A service provider of a referral directory (an office, not a person).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Provider {
    pub code: String,
    pub name: String,
    pub service: ServiceKind,
    /// The area code it serves, at any level (empty: the whole country).
    pub area: String,
    /// How to reach the service.
    pub contact: String,
}

/// An area of an administrative area tree.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AreaInfo {
    pub code: String,
    pub label: String,
    pub level: AreaLevel,
    pub has_children: bool,
}

fn signed(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Reference data read in one language (see the module's notes). Get one from a store
/// (`VigieStore.reference(language)`: the data in force there) or `builtin_reference(language)`.
#[derive(uniffi::Object)]
pub struct ReferenceCatalog {
    data: Arc<ReferenceData>,
    language: String,
}

/// The reference data that ships with the product (the ILO default profile, checklists,
/// sectors, service types), labelled in `language`. Does not block.
#[uniffi::export]
pub fn builtin_reference(language: String) -> Arc<ReferenceCatalog> {
    Arc::new(ReferenceCatalog {
        data: Arc::new(ReferenceData::builtin()),
        language,
    })
}

impl ReferenceCatalog {
    fn item(&self, item: &Item) -> LabelledItem {
        LabelledItem {
            code: item.code.clone(),
            label: item.label(&self.language).to_string(),
        }
    }

    fn items(&self, items: &[Item]) -> Vec<LabelledItem> {
        items.iter().map(|i| self.item(i)).collect()
    }

    fn checklist_of(&self, c: &vigie_core::reference::Checklist) -> LabelledChecklist {
        LabelledChecklist {
            id: c.id.clone(),
            version: signed(c.version),
            name: c.name.get(&self.language).unwrap_or(&c.id).to_string(),
            items: c
                .items
                .iter()
                .map(|i| LabelledChecklistItem {
                    code: i.code.clone(),
                    label: i.label(&self.language).to_string(),
                    breach: i.breach,
                })
                .collect(),
        }
    }

    fn directory(&self, country: Option<&str>) -> Option<&ReferralDirectory> {
        let pin = self
            .data
            .active_pin(ReferenceType::ReferralServices, country)?;
        self.data.referral_directory_at(&pin)
    }

    fn area_info(&self, node: &AreaNode, level: AreaLevel) -> AreaInfo {
        AreaInfo {
            code: node.code.clone(),
            label: node
                .labels
                .get(&self.language)
                .unwrap_or(&node.code)
                .to_string(),
            level,
            has_children: !node.children.is_empty(),
        }
    }

    /// The path from the country down to `code` in the country's latest area tree.
    fn path(&self, country: &str, code: &str) -> Vec<AreaInfo> {
        let Some(path) = self.data.area_tree(country).and_then(|t| t.path(code)) else {
            return Vec::new();
        };
        path.iter()
            .zip(AreaLevel::ALL)
            .map(|(node, level)| self.area_info(node, level))
            .collect()
    }
}

fn provider(p: &vigie_core::reference::Provider) -> Provider {
    Provider {
        code: p.code.clone(),
        name: p.name.clone(),
        service: p.service,
        area: p.area.clone(),
        contact: p.contact.clone(),
    }
}

#[uniffi::export]
impl ReferenceCatalog {
    /// The language labels are read in.
    pub fn language(&self) -> String {
        self.language.clone()
    }

    /// The same data, labelled in another language.
    pub fn in_language(&self, language: String) -> Arc<ReferenceCatalog> {
        Arc::new(ReferenceCatalog {
            data: self.data.clone(),
            language,
        })
    }

    /// This catalog with one more version added as if built in: `content_json` is the JSON a
    /// hub publishes (`{"administrative_areas": {...}}`, `{"country_profile": {...}}`, ...). For
    /// tools and tests: an app receives published versions from the hub. A version already
    /// there is kept as it was. Invalid content is `Validation`.
    pub fn with_content(
        &self,
        key: String,
        version: i32,
        content_json: String,
    ) -> Result<Arc<ReferenceCatalog>> {
        let version = u32::try_from(version)
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| VigieError::validation("version", "versions are numbered from 1"))?;
        if key.trim().is_empty() {
            return Err(VigieError::validation("key", "must not be empty"));
        }
        // serde's messages may quote the content: only the rule is said.
        let content: ReferenceContent = serde_json::from_str(&content_json).map_err(|_| {
            VigieError::validation(
                "content_json",
                "must be reference content: one of country_profile, checklist, sectors, \
                 referral_services, administrative_areas, as the hub publishes it",
            )
        })?;
        content
            .validate()
            .map_err(|e| VigieError::validation(e.field, e.rule))?;
        let data = (*self.data).clone().with(&key, version, content);
        Ok(Arc::new(ReferenceCatalog {
            data: Arc::new(data),
            language: self.language.clone(),
        }))
    }

    /// The versions new records of `country` are captured with now (`null`/`None`: what applies
    /// where a country has none of its own).
    pub fn active_versions(&self, country: Option<String>) -> ReferencePins {
        let pin = |ty| self.data.active_pin(ty, country.as_deref());
        ReferencePins {
            country_profile: pin(ReferenceType::CountryProfile),
            sectors: pin(ReferenceType::Sectors),
            referral_services: pin(ReferenceType::ReferralServices),
            administrative_areas: country.as_deref().and_then(|c| {
                let version = self
                    .data
                    .latest_version(ReferenceType::AdministrativeAreas, c)?;
                Some(Pin::new(c, version))
            }),
        }
    }

    /// The country profile new cases of `country` are classified with (its own, else the
    /// default profile; `null`/`None`: the default profile).
    pub fn country_profile(&self, country: Option<String>) -> Option<CountryProfile> {
        let pin = self
            .data
            .active_pin(ReferenceType::CountryProfile, country.as_deref())?;
        self.country_profile_at(pin.to_string())
    }

    /// The country profile at a version `key@version` (as a record's `captured_with` names it).
    pub fn country_profile_at(&self, version: String) -> Option<CountryProfile> {
        let pin = Pin::parse(&version)?;
        let p = self.data.country_profile(&pin.key, pin.version)?;
        Some(CountryProfile {
            name: p.name.get(&self.language).unwrap_or(&pin.key).to_string(),
            key: pin.key,
            version: signed(pin.version),
            minimum_age: signed(p.thresholds.minimum_age),
            light_work_min_age: signed(p.thresholds.light_work_min_age),
            light_work_max_hours: signed(p.thresholds.light_work_max_hours),
            hazardous_work_age: signed(p.thresholds.hazardous_work_age),
            long_hours: signed(p.thresholds.long_hours),
            night_work_is_hazardous: p.thresholds.night_work_is_hazardous,
            hazardous_work: self.items(&p.thresholds.hazardous_work),
            worst_forms: self.items(&p.worst_forms),
            follow_up_months: p
                .thresholds
                .follow_up_months
                .iter()
                .copied()
                .map(signed)
                .collect(),
            follow_up_yearly_until_age: signed(p.thresholds.follow_up_yearly_until_age),
        })
    }

    /// The sectors a workplace of `country` may have (its own list, else the default one).
    pub fn sectors(&self, country: Option<String>) -> Vec<LabelledItem> {
        self.data
            .active_pin(ReferenceType::Sectors, country.as_deref())
            .and_then(|pin| self.data.sectors_at(&pin))
            .map(|s| self.items(s))
            .unwrap_or_default()
    }

    /// Every version of every checklist.
    pub fn checklists(&self) -> Vec<LabelledChecklist> {
        self.data
            .checklists()
            .iter()
            .map(|c| self.checklist_of(c))
            .collect()
    }

    /// A checklist at `version`, or at its latest version (what new visits answer).
    pub fn checklist(&self, id: String, version: Option<i32>) -> Option<LabelledChecklist> {
        let checklist = match version {
            None => self.data.latest_checklist(&id),
            Some(v) => self.data.checklist(&id, u32::try_from(v).ok()?),
        }?;
        Some(self.checklist_of(checklist))
    }

    /// The ILO's 11 indicators of forced labour, as a visit records them.
    pub fn forced_labour_indicators(&self) -> Vec<ForcedLabourItem> {
        let Some(checklist) = self.data.forced_labour_indicators() else {
            return Vec::new();
        };
        checklist
            .items
            .iter()
            .filter_map(|item| {
                // A code this version does not know (from a newer hub) cannot be recorded.
                let indicator: ForcedLabourIndicator =
                    serde_json::from_value(serde_json::Value::String(item.code.clone())).ok()?;
                Some(ForcedLabourItem {
                    indicator,
                    code: item.code.clone(),
                    label: item.label(&self.language).to_string(),
                })
            })
            .collect()
    }

    /// The types of service children of `country` are referred to.
    pub fn referral_services(&self, country: Option<String>) -> Vec<ReferralService> {
        let Some(directory) = self.directory(country.as_deref()) else {
            return Vec::new();
        };
        directory
            .services
            .iter()
            .filter_map(|item| {
                let service: ServiceKind =
                    serde_json::from_value(serde_json::Value::String(item.code.clone())).ok()?;
                Some(ReferralService {
                    service,
                    label: item.label(&self.language).to_string(),
                })
            })
            .collect()
    }

    /// Every provider in the referral directory of `country`.
    pub fn providers(&self, country: Option<String>) -> Vec<Provider> {
        self.directory(country.as_deref())
            .map(|d| d.providers.iter().map(provider).collect())
            .unwrap_or_default()
    }

    /// The providers of `service` that serve `area` (the directory of the area's country).
    pub fn providers_for(&self, service: ServiceKind, area: Area) -> Vec<Provider> {
        self.directory(Some(&area.country))
            .map(|d| {
                d.providers_for(service, &area)
                    .into_iter()
                    .map(provider)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The area with `code` in the latest area tree of `country`, if it is there.
    pub fn area(&self, country: String, code: String) -> Option<AreaInfo> {
        self.path(&country, &code).pop()
    }

    /// The areas directly inside `code` (the country's code gives its regions).
    pub fn area_children(&self, country: String, code: String) -> Vec<AreaInfo> {
        let Some(tree) = self.data.area_tree(&country) else {
            return Vec::new();
        };
        let Some(path) = tree.path(&code) else {
            return Vec::new();
        };
        let (Some(node), Some(level)) = (path.last(), AreaLevel::ALL.get(path.len())) else {
            return Vec::new();
        };
        node.children
            .iter()
            .map(|c| self.area_info(c, *level))
            .collect()
    }

    /// The areas from the country down to `code` (empty if it is not in the tree).
    pub fn area_path(&self, country: String, code: String) -> Vec<AreaInfo> {
        self.path(&country, &code)
    }

    /// The full area (country to community) of a community of the country's tree.
    pub fn area_of_community(&self, country: String, community: String) -> Option<Area> {
        self.data.area_tree(&country)?.area_of(&community)
    }
}

#[uniffi::export]
impl VigieStore {
    /// The reference data in force in this store (built in, plus every version the hub
    /// published and this device received), labelled in `language` (`fr`, `en`, `fr-CI`, ...).
    /// Blocks briefly (reads the store when the reference documents changed).
    pub fn reference(&self, language: String) -> Result<Arc<ReferenceCatalog>> {
        let data = self.with_store(|s| Ok(s.reference()))?;
        Ok(Arc::new(ReferenceCatalog { data, language }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TREE: &str = r#"{"administrative_areas": {"code": "CI", "labels": {"fr": "Côte d'Ivoire"},
        "children": [{"code": "CI-R1", "labels": {"en": "Lakes"}, "children": [
            {"code": "CI-R1-D1", "labels": {"fr": "Yamoussoukro"}, "children": [
                {"code": "CI-R1-D1-C01", "labels": {"fr": "Kouamékro"}}]}]}]}}"#;

    #[test]
    fn areas_have_the_level_of_their_depth_and_labels_fall_back() {
        let catalog = builtin_reference("sw".into())
            .with_content("CI".into(), 1, TREE.into())
            .unwrap();
        let levels = |code: &str| -> Vec<AreaLevel> {
            catalog
                .area_children("CI".into(), code.into())
                .iter()
                .map(|a| a.level)
                .collect()
        };
        assert_eq!(levels("CI"), [AreaLevel::Region]);
        assert_eq!(levels("CI-R1"), [AreaLevel::District]);
        assert_eq!(levels("CI-R1-D1"), [AreaLevel::Community]);
        assert!(levels("CI-R1-D1-C01").is_empty());
        assert!(levels("nowhere").is_empty());
        // Swahili is not there: French, then English, then the code.
        let path = catalog.area_path("CI".into(), "CI-R1-D1-C01".into());
        let labels: Vec<&str> = path.iter().map(|a| a.label.as_str()).collect();
        assert_eq!(
            labels,
            ["Côte d'Ivoire", "Lakes", "Yamoussoukro", "Kouamékro"]
        );
        assert_eq!(catalog.area_children("BF".into(), "BF".into()), vec![]);
    }

    #[test]
    fn content_that_is_not_reference_data_is_refused_without_quoting_it() {
        let catalog = builtin_reference("fr".into());
        let e = catalog
            .with_content("CI".into(), 1, "Aya Kouassi".into())
            .err()
            .unwrap();
        assert!(matches!(&e, VigieError::Validation { field, .. } if field == "content_json"));
        assert!(!e.to_string().contains("Aya"));
    }
}

//! Reference data the records are checked against: country profiles (the classification rules),
//! checklists, sectors, referral services and providers, administrative areas.
//!
//! The product ships a built-in set (`builtin.json`, from the ILO conventions). A hub publishes
//! more as documents (`ReferenceDocument`, one per type and key) that sync to every device. A
//! published version is never changed: a document keeps every version it ever had, and a record
//! remembers the versions it was captured with (`ReferencePins`), so a record captured under
//! CI@1 keeps being classified and validated with CI@1 after CI@2 arrives.
//!
//! - `labels`: labels by language and coded items;
//! - `content`: each type's content, reference files, pins;
//! - `builtin`: the data the product ships;
//! - this module: `ReferenceData`, every version a store knows.

pub mod builtin;
pub mod content;
pub mod labels;

pub use content::{
    AreaGrant, AreaNode, Checklist, ChecklistContent, CountryProfile, DEFAULT_PROFILE,
    MAX_FILE_BYTES, Outline, Pin, Provider, Published, ReferenceContent, ReferenceFile,
    ReferencePins, ReferralDirectory,
};
pub use labels::{ChecklistItem, Item, Labels, Sector};

pub use crate::domain::codes::{AreaLevel, ReferenceType};

use crate::domain::area::Area;
use crate::domain::classify::RuleSet;
use crate::domain::validation::ValidationError;
use content::{unknown_version, valid_key};
use std::collections::BTreeMap;
use std::sync::OnceLock;

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

    /// The reference data that ships with the product (`builtin`).
    pub fn builtin() -> ReferenceData {
        static BUILTIN: OnceLock<ReferenceData> = OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                let mut data = ReferenceData::empty(DEFAULT_PROFILE);
                for file in builtin::files() {
                    data.insert(&file.key, 1, file.content, false);
                }
                data
            })
            .clone()
    }

    /// Adds a version to the data a store starts from (as if built in).
    pub fn with(mut self, key: &str, version: u32, content: ReferenceContent) -> ReferenceData {
        self.insert(key, version, content, false);
        self
    }

    /// A version already known is kept as it is: versions never change.
    pub(crate) fn insert(
        &mut self,
        key: &str,
        version: u32,
        content: ReferenceContent,
        published: bool,
    ) {
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

    /// Adds a version of a published document this software can read (the content checked
    /// first: a version that does not validate is not in force).
    pub(crate) fn add_published_version(
        &mut self,
        key: &str,
        version: u32,
        content: ReferenceContent,
    ) {
        if valid_key(key) && content.validate().is_ok() {
            self.insert(key, version, content, true);
        }
    }

    /// Clears the outlines of every area tree version but the latest of its country: only the
    /// tree in force is drawn, and records are checked against codes, so years of published
    /// trees do not hold years of outlines in memory.
    pub(crate) fn drop_old_outlines(&mut self) {
        fn clear(node: &mut AreaNode) {
            node.outline = Outline::default();
            node.children.iter_mut().for_each(clear);
        }
        for ((ty, _), versions) in self.entries.iter_mut() {
            if *ty != ReferenceType::AdministrativeAreas {
                continue;
            }
            let latest = versions.keys().next_back().copied();
            for (version, entry) in versions.iter_mut() {
                if Some(*version) != latest
                    && let ReferenceContent::AdministrativeAreas(tree) = &mut entry.content
                {
                    clear(tree);
                }
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

    /// Whether any country's area tree is published here: until one is, area codes mean
    /// nothing on this device, and the hub judges areas alone.
    pub fn holds_area_trees(&self) -> bool {
        self.entries
            .keys()
            .any(|(ty, _)| *ty == ReferenceType::AdministrativeAreas)
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

    /// The key of what applies to a country without its own of `ty` (the default profile, the
    /// default sector list...).
    pub fn default_key(&self, ty: ReferenceType) -> &str {
        match ty {
            ReferenceType::CountryProfile => &self.default_profile,
            _ => ty.default_key(),
        }
    }

    /// The countries whose area trees are held here, by their codes, in order.
    pub fn countries(&self) -> Vec<&str> {
        let mut countries = self.keys(ReferenceType::AdministrativeAreas);
        countries.sort_unstable();
        countries
    }

    /// Whether a country profile, sector list or referral directory under `key` applies to
    /// any record: under the default key, to every country without its own; else to the
    /// records of the country whose area tree's root is `key` (a record takes its country's by
    /// its area's country code). Unknown while no area tree is held here (true then).
    pub fn key_applies(&self, ty: ReferenceType, key: &str) -> bool {
        !matches!(
            ty,
            ReferenceType::CountryProfile
                | ReferenceType::Sectors
                | ReferenceType::ReferralServices
        ) || key == self.default_key(ty)
            || !self.holds_area_trees()
            || self
                .entries
                .contains_key(&(ReferenceType::AdministrativeAreas, key.to_string()))
    }

    /// What a record without a pin was checked against: the built-in version.
    pub(crate) fn builtin_pin(&self, ty: ReferenceType) -> Option<Pin> {
        let key = match ty {
            ReferenceType::CountryProfile => self.default_profile.as_str(),
            _ => ty.default_key(),
        };
        let versions = self.entries.get(&(ty, key.to_string()))?;
        let (version, _) = versions.iter().rev().find(|(_, e)| !e.published)?;
        Some(Pin::new(key, *version))
    }

    pub(crate) fn pinned(
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

    /// The rule set a record captured with `pin` is classified with; for one captured before
    /// profiles were pinned, the one its classification names (`classified_with`, `key@version`),
    /// else the built-in one.
    pub fn rule_set_captured(
        &self,
        pin: Option<&Pin>,
        classified_with: Option<&str>,
    ) -> Result<&RuleSet, ValidationError> {
        if let Some(pin) = pin {
            return self
                .rule_set_at(&pin.key, pin.version)
                .ok_or_else(|| unknown_version(ReferenceType::CountryProfile));
        }
        let named = classified_with
            .and_then(Pin::parse)
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

    /// A sector by its code, to name it: from `country`'s list in force, else the default one,
    /// else the latest list of any country that holds the code (a figure across countries, a
    /// workplace pinned to a list since replaced).
    pub fn sector(&self, code: &str, country: Option<&str>) -> Option<&Sector> {
        let in_list = |pin: Option<Pin>| {
            pin.and_then(|p| self.sectors_at(&p))
                .and_then(|list| list.iter().find(|s| s.code == code))
        };
        in_list(self.active_pin(ReferenceType::Sectors, country))
            .or_else(|| in_list(self.active_pin(ReferenceType::Sectors, None)))
            .or_else(|| {
                let mut keys = self.keys(ReferenceType::Sectors);
                keys.sort_unstable();
                keys.into_iter().find_map(|key| {
                    in_list(
                        self.latest_version(ReferenceType::Sectors, key)
                            .map(|v| Pin::new(key, v)),
                    )
                })
            })
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

    /// The referral directory new referrals of `country` name providers of: the country's own
    /// latest, else the default key's.
    pub fn referrals_in_force(&self, country: &str) -> Option<&ReferralDirectory> {
        self.referral_directory_at(
            &self.active_pin(ReferenceType::ReferralServices, Some(country))?,
        )
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
    /// The codes of the areas that contain the area `code` in the published trees, the area
    /// itself included (a district: its country, region and itself). Just `code` when no
    /// tree holds it.
    pub fn codes_containing(&self, code: &str) -> Vec<String> {
        let mut codes: Vec<String> = self
            .keys(ReferenceType::AdministrativeAreas)
            .into_iter()
            .filter_map(|key| self.area_tree(key)?.path(code))
            .flatten()
            .map(|node| node.code.clone())
            .collect();
        codes.push(code.to_string());
        codes.sort();
        codes.dedup();
        codes
    }

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

    /// Where an area code stood in the newest version of each country's area tree that holds
    /// it: for a code no tree in force holds any more (a community a new tree renamed), what a
    /// user assigned it received then.
    pub fn former_grants_of(&self, code: &str) -> Vec<AreaGrant> {
        self.keys(ReferenceType::AdministrativeAreas)
            .into_iter()
            .filter_map(|key| {
                let latest = self.latest_version(ReferenceType::AdministrativeAreas, key)?;
                (1..=latest).rev().find_map(|version| {
                    let tree = self.area_tree_at(&Pin::new(key, version))?;
                    Some(AreaGrant {
                        country: tree.code.clone(),
                        level: tree.level_of(code)?,
                        code: code.to_string(),
                    })
                })
            })
            .collect()
    }

    /// Checks an area against the tree a record was captured with (nothing to check when it
    /// was captured without one), or the latest of its country: a record captured before a
    /// community was renamed, moved or split is filed again under the tree in force.
    pub(crate) fn check_area(
        &self,
        pin: Option<&Pin>,
        area: &Area,
        field: &str,
    ) -> Result<(), ValidationError> {
        match self.pinned(ReferenceType::AdministrativeAreas, pin)? {
            Some(ReferenceContent::AdministrativeAreas(tree)) => {
                tree.check(area, field)
                    .or_else(|pinned| match self.area_tree(&area.country) {
                        Some(latest) if latest.check(area, field).is_ok() => Ok(()),
                        _ => Err(pinned),
                    })
            }
            // Captured before the device held its country's tree: no version to be judged by
            // (the hub judges it against the tree in force when the record is filed). But a
            // country no tree holds, while the device holds others' (every device receives
            // every tree), is one no hub serves, a typo: refused here, naming the field, rather
            // than by the hub at the next sync.
            _ if self.area_tree(&area.country).is_none() && self.holds_area_trees() => {
                Err(ValidationError::new(
                    format!("{field}.{}", AreaLevel::Country.as_str()),
                    "no published administrative areas hold this country",
                ))
            }
            _ => Ok(()),
        }
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
}

//! The reference data that ships with the product, in `builtin.json`: the ILO default country
//! profile (`ilo-default@1`), the default sector list, the labour inspection, child labour and
//! forced-labour (the ILO's 11 indicators) checklists, and the service types. The file is in
//! the format `vigie reference publish` reads (a list of `{"key": ..., "<type>": ...}`), each
//! content at version 1.

use crate::domain::classify::RuleSet;
use crate::domain::reference::content::{
    CountryProfile, DEFAULT_PROFILE, ReferenceContent, ReferenceFile,
};

/// The key of the forced-labour indicators' checklist.
pub(crate) const FORCED_LABOUR: &str = "forced-labour";

/// Every built-in file, in the order the catalog takes them.
pub(crate) fn files() -> Vec<ReferenceFile> {
    serde_json::from_str(include_str!("builtin.json")).expect("the built-in reference data reads")
}

impl CountryProfile {
    /// The profile the product ships: the ILO conventions' own thresholds.
    pub fn ilo_default() -> CountryProfile {
        files()
            .into_iter()
            .find_map(|file| match file.content {
                ReferenceContent::CountryProfile(p) if file.key == DEFAULT_PROFILE => Some(p),
                _ => None,
            })
            .expect("the built-in data holds the default profile")
    }
}

impl RuleSet {
    /// The rule set of the built-in profile, `ilo-default@1`.
    pub fn ilo_default() -> RuleSet {
        CountryProfile::ilo_default().rule_set(DEFAULT_PROFILE, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::codes::{ForcedLabourIndicator, ReferenceType, ServiceKind, WorstForm};

    #[test]
    fn the_built_in_data_is_valid_and_names_every_code() {
        let files = files();
        for file in &files {
            assert_eq!(file.content.validate(), Ok(()), "{}", file.key);
        }
        let codes = |key: &str, ty| -> Vec<String> {
            let file = files
                .iter()
                .find(|f| f.key == key && f.content.reference_type() == ty)
                .expect("a built-in file");
            match &file.content {
                ReferenceContent::Checklist(c) => c.items.iter().map(|i| i.code.clone()).collect(),
                ReferenceContent::ReferralServices(r) => {
                    r.services.iter().map(|i| i.code.clone()).collect()
                }
                ReferenceContent::CountryProfile(p) => {
                    p.worst_forms.iter().map(|i| i.code.clone()).collect()
                }
                _ => Vec::new(),
            }
        };
        let all = |codes: &[&str]| codes.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        assert_eq!(
            codes(FORCED_LABOUR, ReferenceType::Checklist),
            all(&ForcedLabourIndicator::ALL.map(|i| i.as_str()))
        );
        assert_eq!(
            codes("default", ReferenceType::ReferralServices),
            all(&ServiceKind::ALL.map(|s| s.as_str()))
        );
        assert_eq!(
            codes(DEFAULT_PROFILE, ReferenceType::CountryProfile),
            all(&WorstForm::ALL.map(|w| w.as_str()))
        );
    }
}

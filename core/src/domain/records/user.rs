//! A person who uses Vigie, with a role and the areas assigned to them. Users are the hub
//! administrator's: devices receive none and change none.

use super::{Record, Version, record_identity, set_as_map};
use crate::domain::codes::{RecordKind, Role};
use crate::domain::reference::ReferenceData;
use crate::domain::validation::{ValidationError, require_text};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use uuid::Uuid;

/// A person who uses Vigie, with the areas assigned to them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct User {
    #[serde(skip)]
    #[cfg_attr(feature = "uniffi", uniffi(default = ""))]
    pub id: Uuid,
    #[serde(skip)]
    #[cfg_attr(feature = "uniffi", uniffi(default = ""))]
    pub version: Version,
    pub name: String,
    pub role: Role,
    /// Codes of the areas assigned (communities for a monitor, a district for an inspector, a
    /// region for a supervisor): every record whose area has one of these codes at the level
    /// the country's area tree gives the code.
    #[serde(with = "set_as_map", default)]
    pub areas: BTreeSet<String>,
    #[cfg_attr(feature = "uniffi", uniffi(default = true))]
    pub active: bool,
}

impl User {
    pub fn new(name: &str, role: Role, areas: &[&str]) -> User {
        User {
            id: Uuid::now_v7(),
            version: Version::default(),
            name: name.into(),
            role,
            areas: areas.iter().map(|a| a.to_string()).collect(),
            active: true,
        }
    }
}

impl Record for User {
    const KIND: RecordKind = RecordKind::User;
    const TEXT_FIELDS: &'static [&'static str] = &[];
    const COLLECTIONS: &'static [&'static str] = &["areas"];
    record_identity!();

    fn validate(&self, _reference: &ReferenceData) -> Result<(), ValidationError> {
        require_text("name", &self.name)?;
        if self.areas.iter().any(|a| a.trim().is_empty()) {
            return Err(ValidationError::new(
                "areas",
                "an area code must not be empty",
            ));
        }
        Ok(())
    }
}

//! A person who uses Vigie, with a role and the areas assigned to them. Users are the hub
//! administrator's: devices receive none and change none.

use super::{Record, Version, record_identity, set_as_map};
use crate::domain::codes::{RecordKind, Role};
use crate::domain::reference::ReferenceData;
use crate::domain::validation::{MAX_LINE_CHARS, ValidationError, is_one_line, require_text};
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

/// Why a user record an administrator writes is refused (a new user, new areas, a new role, a
/// reactivation): the console and the command line check the same rules, here. Never carries a
/// name; an area code is reference data, not personal data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserProblem {
    /// Empty once trimmed, longer than `User::MAX_NAME_CHARS`, or with a control character (a
    /// line break, a terminal's escape code) or a text-direction control (the one-line rule
    /// of every name, `validation::is_one_line`).
    #[error(
        "a name is 1 to {} characters, on one line, without control or text-direction characters",
        User::MAX_NAME_CHARS
    )]
    Name,
    /// An administrator works on users, devices and reference data: no area gives them
    /// anything, and one listed would say otherwise.
    #[error("an administrator has no area")]
    AdministratorWithAreas,
    /// A field user or supervisor made with no area would see nothing.
    #[error("a field user or supervisor needs at least one area")]
    NoArea,
    /// A code no published area tree names (codes are compared exactly, capitals included):
    /// it would give no access, a typo most often.
    #[error("area {0} is in no published area tree (codes are case-sensitive)")]
    UnknownArea(String),
}

impl UserProblem {
    /// The record's field the problem is about.
    pub fn field(&self) -> &'static str {
        match self {
            UserProblem::Name => "name",
            UserProblem::AdministratorWithAreas | UserProblem::NoArea => "areas",
            UserProblem::UnknownArea(_) => "areas",
        }
    }
}

impl From<UserProblem> for ValidationError {
    fn from(problem: UserProblem) -> ValidationError {
        ValidationError::new(problem.field(), problem.to_string())
    }
}

impl User {
    /// The longest name, in characters (that of every one-line field).
    pub const MAX_NAME_CHARS: usize = MAX_LINE_CHARS;

    /// The rules a user record must pass when an administrator writes it (its role, areas,
    /// name, or its return to activity); `reference` is the reference data in force, whose
    /// area trees must name each area. A deactivation is never refused by them: it takes
    /// access away.
    pub fn check(&self, reference: &ReferenceData) -> Result<(), UserProblem> {
        if self.name.trim().is_empty() || !is_one_line(&self.name, User::MAX_NAME_CHARS) {
            return Err(UserProblem::Name);
        }
        if self.role == Role::Administrator && !self.areas.is_empty() {
            return Err(UserProblem::AdministratorWithAreas);
        }
        if let Some(code) = self
            .areas
            .iter()
            .find(|code| reference.grants_of(code).is_empty())
        {
            return Err(UserProblem::UnknownArea(code.clone()));
        }
        Ok(())
    }

    /// The rules of a new user: `check`'s, and a field user or supervisor has an area (one
    /// may lose them all later, which takes their records away from their devices).
    pub fn check_new(&self, reference: &ReferenceData) -> Result<(), UserProblem> {
        self.check(reference)?;
        if self.role != Role::Administrator && self.areas.is_empty() {
            return Err(UserProblem::NoArea);
        }
        Ok(())
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

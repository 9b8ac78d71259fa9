//! Where a record is: an administrative area by the code of each level, a filter on areas, and
//! a point on the map.

use super::codes::AreaLevel;
use super::validation::ValidationError;
use serde::{Deserialize, Serialize};

/// An administrative area, by the codes of each level (codes are unique across the country:
/// a district's code is not reused in another region).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Area {
    pub country: String,
    pub region: String,
    pub district: String,
    pub community: String,
}

impl Area {
    pub fn new(country: &str, region: &str, district: &str, community: &str) -> Area {
        Area {
            country: country.into(),
            region: region.into(),
            district: district.into(),
            community: community.into(),
        }
    }

    /// The codes of every level, from the country down.
    pub fn codes(&self) -> [&str; 4] {
        [&self.country, &self.region, &self.district, &self.community]
    }

    /// The code of one level.
    pub fn code_at(&self, level: AreaLevel) -> &str {
        match level {
            AreaLevel::Country => &self.country,
            AreaLevel::Region => &self.region,
            AreaLevel::District => &self.district,
            AreaLevel::Community => &self.community,
        }
    }

    pub(crate) fn set_code_at(&mut self, level: AreaLevel, code: String) {
        match level {
            AreaLevel::Country => self.country = code,
            AreaLevel::Region => self.region = code,
            AreaLevel::District => self.district = code,
            AreaLevel::Community => self.community = code,
        }
    }

    pub(crate) fn validate(&self, field: &str) -> Result<(), ValidationError> {
        for (level, code) in AreaLevel::ALL.iter().zip(self.codes()) {
            if code.trim().is_empty() {
                return Err(ValidationError::new(
                    format!("{field}.{level}"),
                    "must not be empty",
                ));
            }
        }
        Ok(())
    }
}

/// A filter on the area of records: every record whose area has this code at this level.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum AreaFilter {
    Country(String),
    Region(String),
    District(String),
    Community(String),
}

impl AreaFilter {
    /// The level the filter matches at, and the code to match.
    pub fn level_and_code(&self) -> (AreaLevel, &str) {
        match self {
            AreaFilter::Country(c) => (AreaLevel::Country, c),
            AreaFilter::Region(c) => (AreaLevel::Region, c),
            AreaFilter::District(c) => (AreaLevel::District, c),
            AreaFilter::Community(c) => (AreaLevel::Community, c),
        }
    }

    /// Whether an area has the filter's code at the filter's level.
    pub fn matches(&self, area: &Area) -> bool {
        let (level, code) = self.level_and_code();
        area.code_at(level) == code
    }
}

/// A point of the map, as the phone's location services give it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct GeoPoint {
    pub latitude: f64,
    pub longitude: f64,
    /// Horizontal accuracy in metres, as reported by the phone.
    #[cfg_attr(feature = "uniffi", uniffi(default = None))]
    pub accuracy_m: Option<f64>,
}

impl GeoPoint {
    pub(crate) fn validate(&self, field: &str) -> Result<(), ValidationError> {
        if !self.latitude.is_finite() || !(-90.0..=90.0).contains(&self.latitude) {
            return Err(ValidationError::new(
                format!("{field}.latitude"),
                "must be between -90 and 90",
            ));
        }
        if !self.longitude.is_finite() || !(-180.0..=180.0).contains(&self.longitude) {
            return Err(ValidationError::new(
                format!("{field}.longitude"),
                "must be between -180 and 180",
            ));
        }
        if let Some(a) = self.accuracy_m
            && (!a.is_finite() || a < 0.0)
        {
            return Err(ValidationError::new(
                format!("{field}.accuracy_m"),
                "must be a non-negative number of metres",
            ));
        }
        Ok(())
    }
}

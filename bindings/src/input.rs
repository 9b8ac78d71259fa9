//! What an app sends, checked once before the core sees it. A malformed id, date or instant in a
//! record or a query was read as a marker (`vigie_core::ffi`): it is refused here with a
//! `Validation` error naming its field, never its value. Ids and dates passed as plain
//! arguments are parsed here, naming the argument.

use crate::error::{Result, VigieError};
use chrono::{DateTime, NaiveDate, TimeZone};
use uuid::Uuid;
use vigie_core::domain::validation::valid_code;
use vigie_core::ffi;
use vigie_core::sync::Recipient;
use vigie_core::{IndicatorFilter, Record, VisitQuery};

/// A record from the app, as the store may take it: no marker anywhere, and the fields only
/// the store sets (`captured_with`) left for it to set.
pub(crate) fn record<R: Record>(mut record: R) -> Result<R> {
    if let Some(rule) = ffi::malformed_id(&record.id()) {
        return Err(VigieError::validation("id", rule));
    }
    if let Some(rule) = ffi::malformed_version(record.version()) {
        return Err(VigieError::validation("version", rule));
    }
    if let Some(pins) = record.pins_mut() {
        *pins = Default::default();
    }
    value("", record)
}

/// A value from the app (a referral, a follow-up), its fields named under `field`.
pub(crate) fn value<T: serde::Serialize>(field: &str, value: T) -> Result<T> {
    match ffi::malformed(&value) {
        None => Ok(value),
        Some((path, rule)) => {
            let name = match (field.is_empty(), path.is_empty()) {
                (true, _) => path,
                (false, true) => field.to_string(),
                (false, false) => format!("{field}.{path}"),
            };
            Err(VigieError::validation(name, rule))
        }
    }
}

pub(crate) fn visit_query(query: VisitQuery) -> Result<VisitQuery> {
    id_opt("workplace_id", query.workplace_id.as_ref())?;
    id_opt("visitor_id", query.visitor_id.as_ref())?;
    instant_opt("started_from", query.started_from.as_ref())?;
    instant_opt("started_before", query.started_before.as_ref())?;
    Ok(query)
}

pub(crate) fn indicator_filter(filter: IndicatorFilter) -> Result<IndicatorFilter> {
    for (field, date) in [("from_date", &filter.from), ("until_date", &filter.until)] {
        if let Some(rule) = date.as_ref().and_then(ffi::malformed_date) {
            return Err(VigieError::validation(field, rule));
        }
    }
    Ok(filter)
}

/// A bundle's recipients as the app named them: a device by a well-formed id (not the nil
/// one), an area by a code.
pub(crate) fn recipients(recipients: &[Recipient]) -> Result<()> {
    for recipient in recipients {
        match recipient {
            Recipient::Device(id) if id.is_nil() || ffi::malformed_id(id).is_some() => {
                return Err(VigieError::validation(
                    "recipients",
                    "must name a device by its id",
                ));
            }
            Recipient::Area(code) if !valid_code(code) => {
                return Err(VigieError::validation(
                    "recipients",
                    "must name an area by its code",
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

fn id_opt(field: &str, id: Option<&Uuid>) -> Result<()> {
    match id.and_then(ffi::malformed_id) {
        Some(rule) => Err(VigieError::validation(field, rule)),
        None => Ok(()),
    }
}

fn instant_opt<Tz: TimeZone>(field: &str, t: Option<&DateTime<Tz>>) -> Result<()> {
    match t.and_then(ffi::malformed_timestamp) {
        Some(rule) => Err(VigieError::validation(field, rule)),
        None => Ok(()),
    }
}

/// An id passed as an argument.
pub(crate) fn id(field: &str, text: &str) -> Result<Uuid> {
    Uuid::try_parse(text.trim()).map_err(|_| VigieError::validation(field, "must be a UUID"))
}

/// An optional id passed as an argument.
pub(crate) fn id_arg_opt(field: &str, text: Option<&str>) -> Result<Option<Uuid>> {
    text.map(|t| id(field, t)).transpose()
}

/// A date passed as an argument.
pub(crate) fn date(field: &str, text: &str) -> Result<NaiveDate> {
    ffi::parse_date(text)
        .ok_or_else(|| VigieError::validation(field, "must be a date written YYYY-MM-DD"))
}

/// A count passed as an argument: never negative.
pub(crate) fn count(field: &str, n: i32) -> Result<u32> {
    u32::try_from(n).map_err(|_| VigieError::validation(field, "must not be negative"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigie_core::{Area, ChildCase, Referral, ServiceKind, Sex};

    fn case() -> ChildCase {
        ChildCase::new(
            "CI-0001",
            "Aya",
            Sex::Female,
            Area::new("CI", "CI-R1", "CI-R1-D1", "CI-R1-D1-C01"),
            NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
            Uuid::now_v7(),
        )
    }

    fn field_of(result: Result<impl std::fmt::Debug>) -> String {
        match result {
            Err(VigieError::Validation { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_marker_is_refused_naming_its_field_and_nothing_else() {
        let mut c = case();
        c.identified_on = ffi::NOT_A_DATE;
        assert_eq!(field_of(record(c)), "identified_on");
        let mut c = case();
        c.workplace_id = Some(ffi::NOT_A_UUID);
        assert_eq!(field_of(record(c)), "workplace_id");
        let mut c = case();
        let key = Uuid::now_v7();
        let mut referral = Referral::new(ServiceKind::Education, "École", c.identified_on);
        referral.date = ffi::NOT_A_DATE;
        c.referrals.insert(key, referral.clone());
        assert_eq!(field_of(record(c)), format!("referrals.{key}.date"));
        let mut c = case();
        c.referrals.insert(ffi::NOT_A_UUID, referral.clone());
        assert_eq!(field_of(record(c)), "referrals");
        assert_eq!(field_of(value("referral", referral)), "referral.date");
        let mut c = case();
        c.id = ffi::NOT_A_UUID;
        assert_eq!(field_of(record(c)), "id");
        // A well-formed record passes, and what only the store sets is left to it.
        let mut c = case();
        c.captured_with.country_profile = vigie_core::Pin::parse("CI@9");
        assert!(record(c).unwrap().captured_with.country_profile.is_none());
    }

    #[test]
    fn dates_and_instants_are_read_only_as_written_back() {
        assert_eq!(
            ffi::parse_date(" 2026-03-02 "),
            NaiveDate::from_ymd_opt(2026, 3, 2)
        );
        for odd in [
            "2026-2-3",
            "+2026-03-02",
            "2026-03-02T00:00",
            "2026/03/02",
            "2026-02-30",
        ] {
            assert_eq!(ffi::parse_date(odd), None, "{odd}");
            assert_eq!(field_of(date("on", odd)), "on");
        }
        assert!(ffi::parse_timestamp("2026-03-02T09:00:00+00:00").is_some());
        assert!(ffi::parse_timestamp("2026-12-31T23:59:60Z").is_none());
        // Offsets of the zones on Earth only.
        assert!(ffi::parse_timestamp("2026-03-02T09:00:00-12:00").is_some());
        assert!(ffi::parse_timestamp("2026-03-02T09:00:00+14:00").is_some());
        assert!(ffi::parse_timestamp("2026-03-02T09:00:00-12:01").is_none());
        assert!(ffi::parse_timestamp("2026-03-02T09:00:00+23:59").is_none());
    }
}

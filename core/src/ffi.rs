//! The types apps exchange as text, and the collections they see as lists and maps (feature
//! `uniffi`: the bindings' types are the model's own, `derive(uniffi::…)` on each).
//!
//! - `Uuid` is a UUID string; an empty one is the nil id (a new record's, which the store fills).
//! - `CalendarDate` (`NaiveDate`) is `YYYY-MM-DD`; `Timestamp` (`DateTime<FixedOffset>`) RFC 3339
//!   with an offset, as the phone took it; `UtcTimestamp` (`DateTime<Utc>`) RFC 3339 in UTC with
//!   milliseconds and a `Z`.
//! - `Version` is opaque text: what a read returned, passed back unchanged. `Pin` is `key@version`.
//! - Sets are lists (sorted, without repeats); maps keyed by ids or codes are maps.
//!
//! A text that does not parse cannot fail where uniffi reads it: uniffi would raise the failure
//! without the field's name. It becomes a marker value instead (the max UUID, the earliest date
//! and instant chrono knows, a version no store holds), and `malformed` finds the field holding
//! one, so that the call is refused with a `Validation` error naming it. The markers are
//! reserved: an app that sends one as a value is told it is malformed.

use crate::domain::records::Version;
use crate::domain::reference::Pin;
use automerge::ChangeHash;
use chrono::{DateTime, FixedOffset, NaiveDate, SecondsFormat, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use uniffi::{FfiConverter, Lift, Lower, MetadataBuffer, TypeId};
use uuid::Uuid;

/// What a malformed UUID reads as.
pub const NOT_A_UUID: Uuid = Uuid::max();
/// What a malformed date reads as.
pub const NOT_A_DATE: NaiveDate = NaiveDate::MIN;

fn not_a_timestamp() -> DateTime<FixedOffset> {
    DateTime::<Utc>::MIN_UTC.fixed_offset()
}

fn not_a_version() -> Version {
    Version::at(vec![ChangeHash([0xff; 32])])
}

/// `DateTime<FixedOffset>`, as apps name it.
pub type Timestamp = DateTime<FixedOffset>;
/// `DateTime<Utc>`, as apps name it.
pub type UtcTimestamp = DateTime<Utc>;
/// `NaiveDate`, as apps name it.
pub type CalendarDate = NaiveDate;

uniffi::custom_type!(Uuid, String, {
    remote,
    lower: |id| id.to_string(),
    try_lift: |text| Ok(match text.trim() {
        "" => Uuid::nil(),
        text => Uuid::try_parse(text).unwrap_or(NOT_A_UUID),
    }),
});

/// A calendar date as apps write it: exactly `YYYY-MM-DD` (surrounding spaces aside). chrono's
/// own parsing also takes "2026-2-3" and "+2026-03-02": a date an app wrote some other way
/// than it reads them back is refused, not quietly read.
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    let text = text.trim();
    let digits_at = |range: std::ops::Range<usize>| {
        text.get(range)
            .is_some_and(|part| part.bytes().all(|b| b.is_ascii_digit()))
    };
    let shaped = text.len() == 10
        && digits_at(0..4)
        && digits_at(5..7)
        && digits_at(8..10)
        && text.as_bytes()[4] == b'-'
        && text.as_bytes()[7] == b'-';
    shaped
        .then(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
        .flatten()
}

/// An RFC 3339 instant as apps write it, without a leap second (which chrono reads as
/// second 59 and then some: a "23:59:60" no clock of a phone shows), with the offset of a zone
/// on Earth (UTC-12 to UTC+14): a visit's day is its local one, and +23:59 would date it a day
/// no one there lived.
pub fn parse_timestamp(text: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .filter(|t| chrono::Timelike::nanosecond(t) < 1_000_000_000)
        .filter(|t| (-12 * 3600..=14 * 3600).contains(&t.offset().local_minus_utc()))
}

uniffi::custom_type!(CalendarDate, String, {
    remote,
    lower: |date| date.format("%Y-%m-%d").to_string(),
    try_lift: |text| Ok(parse_date(&text).unwrap_or(NOT_A_DATE)),
});

uniffi::custom_type!(Timestamp, String, {
    remote,
    lower: |t| t.to_rfc3339_opts(SecondsFormat::AutoSi, false),
    try_lift: |text| Ok(parse_timestamp(&text).unwrap_or_else(not_a_timestamp)),
});

uniffi::custom_type!(UtcTimestamp, String, {
    remote,
    lower: |t| t.to_rfc3339_opts(SecondsFormat::Millis, true),
    try_lift: |text| Ok(parse_timestamp(&text)
        .unwrap_or_else(not_a_timestamp)
        .with_timezone(&Utc)),
});

uniffi::custom_type!(Version, String, {
    lower: |version| version.to_string(),
    try_lift: |text| Ok(Version::parse(text.trim()).unwrap_or_else(not_a_version)),
});

uniffi::custom_type!(Pin, String, {
    lower: |pin| pin.to_string(),
    // Pins are the store's to set: a malformed one is ignored like any other the app sends.
    try_lift: |text| Ok(Pin::parse(text.trim()).unwrap_or_else(|| Pin::new("", 0))),
});

/// A field's value, as `Conflict` shows each concurrent one and resolving a conflict takes it.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum FieldValue {
    Text {
        value: String,
    },
    Integer {
        value: i64,
    },
    Number {
        value: f64,
    },
    Flag {
        value: bool,
    },
    /// No value.
    Empty,
    /// A map or a list, as JSON text.
    Json {
        json: String,
    },
}

impl FieldValue {
    pub fn from_json(value: &serde_json::Value) -> FieldValue {
        use serde_json::Value as J;
        match value {
            J::String(s) => FieldValue::Text { value: s.clone() },
            J::Number(n) => match n.as_i64() {
                Some(i) => FieldValue::Integer { value: i },
                None => FieldValue::Number {
                    value: n.as_f64().unwrap_or(0.0),
                },
            },
            J::Bool(b) => FieldValue::Flag { value: *b },
            J::Null => FieldValue::Empty,
            composite => FieldValue::Json {
                json: composite.to_string(),
            },
        }
    }

    /// The value as JSON; the rule it breaks if it is `Json` text that does not parse or a
    /// number that is not finite.
    pub fn to_json(&self) -> Result<serde_json::Value, &'static str> {
        use serde_json::Value as J;
        Ok(match self {
            FieldValue::Text { value } => J::String(value.clone()),
            FieldValue::Integer { value } => J::from(*value),
            FieldValue::Number { value } => serde_json::Number::from_f64(*value)
                .map(J::Number)
                .ok_or("must be a finite number")?,
            FieldValue::Flag { value } => J::Bool(*value),
            FieldValue::Empty => J::Null,
            FieldValue::Json { json } => {
                serde_json::from_str(json).map_err(|_| "must be a JSON value")?
            }
        })
    }
}

/// A JSON value (a conflict's), as apps see it: a `FieldValue`.
pub type JsonValue = serde_json::Value;

uniffi::custom_type!(JsonValue, FieldValue, {
    remote,
    lower: |value| FieldValue::from_json(&value),
    try_lift: |value| Ok(value.to_json().unwrap_or(serde_json::Value::Null)),
});

// Sets as lists and ordered maps as maps: the same bytes as uniffi's `Vec` and `HashMap`, so the
// foreign side sees plain lists and maps.

unsafe impl<T> FfiConverter<crate::UniFfiTag> for BTreeSet<T>
where
    T: Lift<crate::UniFfiTag> + Lower<crate::UniFfiTag> + TypeId<crate::UniFfiTag> + Ord,
{
    uniffi::ffi_converter_rust_buffer_lift_and_lower!(crate::UniFfiTag);

    fn write(set: BTreeSet<T>, buf: &mut Vec<u8>) {
        <Vec<T> as Lower<crate::UniFfiTag>>::write(set.into_iter().collect(), buf)
    }

    fn try_read(buf: &mut &[u8]) -> uniffi::Result<BTreeSet<T>> {
        Ok(<Vec<T> as Lift<crate::UniFfiTag>>::try_read(buf)?
            .into_iter()
            .collect())
    }

    const TYPE_ID_META: MetadataBuffer = <Vec<T> as TypeId<crate::UniFfiTag>>::TYPE_ID_META;
}

unsafe impl<K, V> FfiConverter<crate::UniFfiTag> for BTreeMap<K, V>
where
    K: Lift<crate::UniFfiTag> + Lower<crate::UniFfiTag> + TypeId<crate::UniFfiTag>,
    K: Ord + std::hash::Hash,
    V: Lift<crate::UniFfiTag> + Lower<crate::UniFfiTag> + TypeId<crate::UniFfiTag>,
{
    uniffi::ffi_converter_rust_buffer_lift_and_lower!(crate::UniFfiTag);

    fn write(map: BTreeMap<K, V>, buf: &mut Vec<u8>) {
        // As uniffi writes a map: its length, then each key and value.
        let len = i32::try_from(map.len()).unwrap_or(i32::MAX);
        buf.extend_from_slice(&len.to_be_bytes());
        for (key, value) in map.into_iter().take(len as usize) {
            <K as Lower<crate::UniFfiTag>>::write(key, buf);
            <V as Lower<crate::UniFfiTag>>::write(value, buf);
        }
    }

    fn try_read(buf: &mut &[u8]) -> uniffi::Result<BTreeMap<K, V>> {
        Ok(<HashMap<K, V> as Lift<crate::UniFfiTag>>::try_read(buf)?
            .into_iter()
            .collect())
    }

    const TYPE_ID_META: MetadataBuffer = <HashMap<K, V> as TypeId<crate::UniFfiTag>>::TYPE_ID_META;
}

uniffi::derive_ffi_traits!(impl<T> Lower<crate::UniFfiTag> for BTreeSet<T> where BTreeSet<T>: FfiConverter<crate::UniFfiTag>);
uniffi::derive_ffi_traits!(impl<T> Lift<crate::UniFfiTag> for BTreeSet<T> where BTreeSet<T>: FfiConverter<crate::UniFfiTag>);
uniffi::derive_ffi_traits!(impl<T> TypeId<crate::UniFfiTag> for BTreeSet<T> where BTreeSet<T>: FfiConverter<crate::UniFfiTag>);
uniffi::derive_ffi_traits!(impl<K, V> Lower<crate::UniFfiTag> for BTreeMap<K, V> where BTreeMap<K, V>: FfiConverter<crate::UniFfiTag>);
uniffi::derive_ffi_traits!(impl<K, V> Lift<crate::UniFfiTag> for BTreeMap<K, V> where BTreeMap<K, V>: FfiConverter<crate::UniFfiTag>);
uniffi::derive_ffi_traits!(impl<K, V> TypeId<crate::UniFfiTag> for BTreeMap<K, V> where BTreeMap<K, V>: FfiConverter<crate::UniFfiTag>);

// ---------------------------------------------------------------------------------------------
// Finding the markers

const UUID_RULE: &str = "must be a UUID";
const DATE_RULE: &str = "must be a date written YYYY-MM-DD";
const TIMESTAMP_RULE: &str =
    "must be an RFC 3339 date and time with an offset, e.g. 2026-03-02T09:00:00+00:00";
const VERSION_RULE: &str = "must be a version returned by this store, unchanged";

/// The rule a malformed id breaks, if `id` holds the marker of one.
pub fn malformed_id(id: &Uuid) -> Option<&'static str> {
    (*id == NOT_A_UUID).then_some(UUID_RULE)
}

/// The rule a malformed version breaks, if `version` holds the marker of one.
pub fn malformed_version(version: &Version) -> Option<&'static str> {
    (*version == not_a_version()).then_some(VERSION_RULE)
}

/// The rule a malformed date breaks, if `date` holds the marker of one.
pub fn malformed_date(date: &NaiveDate) -> Option<&'static str> {
    (*date == NOT_A_DATE).then_some(DATE_RULE)
}

/// The rule a malformed instant breaks, if `t` holds the marker of one.
pub fn malformed_timestamp<Tz: chrono::TimeZone>(t: &DateTime<Tz>) -> Option<&'static str> {
    (t.timestamp() == not_a_timestamp().timestamp()).then_some(TIMESTAMP_RULE)
}

/// The first field of `value` (a record as serde writes it) that holds a marker, as a dotted
/// path from the root, with the rule it breaks. A map key that is a marker names the map.
pub fn malformed(value: &impl serde::Serialize) -> Option<(String, &'static str)> {
    let markers: Vec<(serde_json::Value, &'static str)> = vec![
        (serde_json::json!(NOT_A_UUID), UUID_RULE),
        (serde_json::json!(NOT_A_DATE), DATE_RULE),
        (serde_json::json!(not_a_timestamp()), TIMESTAMP_RULE),
        (
            serde_json::json!(not_a_timestamp().to_utc()),
            TIMESTAMP_RULE,
        ),
    ];
    let rule_of = |v: &serde_json::Value| markers.iter().find(|(m, _)| m == v).map(|(_, r)| *r);
    let json = serde_json::to_value(value).ok()?;
    let mut stack = vec![(String::new(), &json)];
    while let Some((path, value)) = stack.pop() {
        if let Some(rule) = rule_of(value) {
            return Some((path, rule));
        }
        let child = |key: &str| {
            if path.is_empty() {
                key.to_string()
            } else {
                format!("{path}.{key}")
            }
        };
        match value {
            serde_json::Value::Object(map) => {
                for (key, inner) in map.iter().rev() {
                    if let Some(rule) = rule_of(&serde_json::Value::String(key.clone())) {
                        return Some((path, rule));
                    }
                    stack.push((child(key), inner));
                }
            }
            serde_json::Value::Array(items) => {
                for (i, inner) in items.iter().enumerate().rev() {
                    stack.push((child(&i.to_string()), inner));
                }
            }
            _ => {}
        }
    }
    None
}

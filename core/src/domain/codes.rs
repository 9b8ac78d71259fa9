//! Every enum of the model, each with the one code it is stored and exchanged under.
//!
//! The code is what documents, index rows, exports, indicators and error texts hold
//! (`labour_inspection`, `community_monitor`): written once here, in the table of each enum,
//! and read back with `from_code`. Serde writes and reads the same code, so a document and an
//! index row can never spell a value differently. A code, once shipped, never changes.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Declares an enum with the code of each variant (and, optionally, the variant an unknown code
/// reads as, for a value a newer version may write).
macro_rules! coded {
    (
        $(#[$meta:meta])*
        pub enum $name:ident $(else $fallback:ident)? {
            $( $(#[$vmeta:meta])* $variant:ident $(= $disc:tt)? => $code:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
        pub enum $name {
            $( $(#[$vmeta])* $variant $(= $disc)? ),+
        }

        impl $name {
            const COUNT: usize = [$($code),+].len();
            /// Every value, in declaration order.
            pub const ALL: [$name; Self::COUNT] = [$($name::$variant),+];

            /// The code this value is stored and exchanged under.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $code ),+
                }
            }

            /// The value a code stands for.
            pub fn from_code(code: &str) -> Option<$name> {
                match code {
                    $( $code => Some($name::$variant), )+
                    _ => None,
                }
            }

            /// The value stored as this number in SQLite (its discriminant: see the enums
            /// whose discriminants are written out).
            pub fn from_i64(number: i64) -> Option<$name> {
                $name::ALL.into_iter().find(|v| *v as i64 == number)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        // As serde's derive does it: a unit variant, named by its code in text formats (JSON
        // documents, index rows) and by its position in binary ones (postcard sync messages).
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let index = $name::ALL.iter().position(|v| v == self).unwrap_or(0) as u32;
                s.serialize_unit_variant(stringify!($name), index, self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                const CODES: &[&str] = &[$($code),+];
                d.deserialize_enum(
                    stringify!($name),
                    CODES,
                    UnitVariant(|code: Option<&str>, index: Option<u64>| match (code, index) {
                        (Some(code), _) => $name::from_code(code) $( .or(Some($name::$fallback)) )?,
                        (None, Some(i)) => usize::try_from(i).ok().and_then(|i| $name::ALL.get(i).copied()),
                        (None, None) => None,
                    }, CODES),
                )
            }
        }
    };
}

/// Reads a unit variant by its code (text formats) or its position (binary formats), as
/// serde's derive would, with `find` mapping either to the value.
struct UnitVariant<F>(F, &'static [&'static str]);

impl<'de, T, F> serde::de::Visitor<'de> for UnitVariant<F>
where
    F: Fn(Option<&str>, Option<u64>) -> Option<T>,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "one of {:?}", self.1)
    }

    fn visit_enum<A: serde::de::EnumAccess<'de>>(self, data: A) -> Result<T, A::Error> {
        use serde::de::VariantAccess;
        let (value, variant) = data.variant_seed(Identifier(&self.0, self.1))?;
        variant.unit_variant()?;
        Ok(value)
    }
}

/// The variant's identifier: a code or a position.
struct Identifier<'f, F>(&'f F, &'static [&'static str]);

impl<'de, T, F> serde::de::DeserializeSeed<'de> for Identifier<'_, F>
where
    F: Fn(Option<&str>, Option<u64>) -> Option<T>,
{
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl<'de, T, F> serde::de::Visitor<'de> for Identifier<'_, F>
where
    F: Fn(Option<&str>, Option<u64>) -> Option<T>,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "one of {:?}", self.1)
    }

    fn visit_str<E: serde::de::Error>(self, code: &str) -> Result<T, E> {
        (self.0)(Some(code), None).ok_or_else(|| E::unknown_variant(code, self.1))
    }

    fn visit_bytes<E: serde::de::Error>(self, code: &[u8]) -> Result<T, E> {
        let code = std::str::from_utf8(code).map_err(|_| E::custom("a code is UTF-8"))?;
        self.visit_str(code)
    }

    fn visit_u64<E: serde::de::Error>(self, index: u64) -> Result<T, E> {
        (self.0)(None, Some(index)).ok_or_else(|| E::custom("no such variant"))
    }
}

coded! {
    /// The kinds of record a store holds. The discriminant is stored in SQLite: never renumber.
    pub enum RecordKind {
        Workplace = 1 => "workplace",
        Visit = 2 => "visit",
        ChildCase = 3 => "child_case",
        User = 4 => "user",
        /// Reference data published by the hub (`reference::ReferenceDocument`).
        Reference = 5 => "reference",
    }
}

impl RecordKind {
    /// The kind a code names (`from_code` under its older name).
    pub fn from_str_opt(code: &str) -> Option<Self> {
        Self::from_code(code)
    }
}

coded! {
    pub enum Formality {
        Formal => "formal",
        Informal => "informal",
    }
}

coded! {
    /// The discriminant is stored in SQLite: never renumber.
    pub enum VisitKind {
        LabourInspection = 1 => "labour_inspection",
        CommunityMonitoring = 2 => "community_monitoring",
        FollowUp = 3 => "follow_up",
    }
}

coded! {
    /// draft → submitted → validated | returned (`VisitStatus::can_become`). The discriminant
    /// is stored in SQLite (schema 14's review queue names `Submitted`'s): never renumber.
    pub enum VisitStatus {
        Draft = 1 => "draft",
        Submitted = 2 => "submitted",
        Validated = 3 => "validated",
        Returned = 4 => "returned",
    }
}

coded! {
    pub enum Answer {
        Yes => "yes",
        No => "no",
        NotApplicable => "not_applicable",
    }
}

coded! {
    /// The ILO's 11 indicators of forced labour.
    pub enum ForcedLabourIndicator {
        AbuseOfVulnerability => "abuse_of_vulnerability",
        Deception => "deception",
        RestrictionOfMovement => "restriction_of_movement",
        Isolation => "isolation",
        PhysicalAndSexualViolence => "physical_and_sexual_violence",
        IntimidationAndThreats => "intimidation_and_threats",
        RetentionOfIdentityDocuments => "retention_of_identity_documents",
        WithholdingOfWages => "withholding_of_wages",
        DebtBondage => "debt_bondage",
        AbusiveWorkingAndLivingConditions => "abusive_working_and_living_conditions",
        ExcessiveOvertime => "excessive_overtime",
    }
}

coded! {
    pub enum VisitAction {
        None => "none",
        Advice => "advice",
        Warning => "warning",
        Order => "order",
        Referral => "referral",
    }
}

coded! {
    /// The discriminant is stored in SQLite: never renumber.
    pub enum Sex {
        Female = 1 => "female",
        Male = 2 => "male",
    }
}

coded! {
    /// How a child's age was established when no date of birth is known, or how the date was.
    pub enum AgeBasis {
        BirthCertificate => "birth_certificate",
        IdentityDocument => "identity_document",
        SchoolRecord => "school_record",
        DeclaredByGuardian => "declared_by_guardian",
        DeclaredByChild => "declared_by_child",
        ObservedByMonitor => "observed_by_monitor",
    }
}

coded! {
    pub enum SchoolStatus {
        Attending => "attending",
        AttendingIrregularly => "attending_irregularly",
        DroppedOut => "dropped_out",
        NeverEnrolled => "never_enrolled",
        Unknown => "unknown",
    }
}

coded! {
    /// C182 art. 3 (a)–(c); (d), hazardous work, is found from the hazards observed.
    pub enum WorstForm {
        SlaveryOrTrafficking => "slavery_or_trafficking",
        DebtBondage => "debt_bondage",
        ForcedLabour => "forced_labour",
        ArmedConflict => "armed_conflict",
        SexualExploitation => "sexual_exploitation",
        IllicitActivities => "illicit_activities",
    }
}

coded! {
    /// identified → referred → receiving services → withdrawn | prevented → closed
    /// (`CaseStatus::can_become`). The discriminant is stored in SQLite: never renumber.
    pub enum CaseStatus {
        Identified = 1 => "identified",
        Referred = 2 => "referred",
        ReceivingServices = 3 => "receiving_services",
        Withdrawn = 4 => "withdrawn",
        Prevented = 5 => "prevented",
        Closed = 6 => "closed",
    }
}

coded! {
    pub enum ServiceKind {
        Education => "education",
        Health => "health",
        SocialProtection => "social_protection",
        LegalOrPolice => "legal_or_police",
        Vocational => "vocational",
    }
}

coded! {
    pub enum FollowUpSituation {
        StillWorking => "still_working",
        AtRisk => "at_risk",
        Withdrawn => "withdrawn",
        InSchool => "in_school",
        NotFound => "not_found",
    }
}

coded! {
    pub enum Role {
        Inspector => "inspector",
        CommunityMonitor => "community_monitor",
        Supervisor => "supervisor",
        /// The hub's administrator (users, devices, reference data, in the hub's console):
        /// receives and changes no field record. Last, so that the others keep their positions.
        Administrator => "administrator",
    }
}

impl Role {
    /// The role as a sentence names one of its users ("a community monitor", "an
    /// inspector"): its code, in words.
    pub fn in_words(self) -> String {
        let words = self.as_str().replace('_', " ");
        let article = if words.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        format!("{article} {words}")
    }
}

coded! {
    /// The discriminant is stored in SQLite: never renumber.
    pub enum ClassificationOutcome {
        NotChildLabour = 1 => "not_child_labour",
        ChildLabour = 2 => "child_labour",
        HazardousChildLabour = 3 => "hazardous_child_labour",
        WorstFormSuspected = 4 => "worst_form_suspected",
    }
}

coded! {
    /// How urgent an alert is, higher first. The discriminant is stored in derived rows only
    /// (alert rows, the outbox's and attachments' priority): renumbering it takes a migration
    /// that re-derives them (schema 15 did, when the forced-labour and follow-up levels came).
    pub enum AlertSeverity {
        /// A visit found one of the ILO forced-labour indicators, a weak one on its own, and no
        /// child at work.
        ForcedLabourIndicators = 1 => "forced_labour_indicators",
        /// A visit found several forced-labour indicators, or a strong one (debt bondage,
        /// retention of identity documents, restriction of movement, physical and sexual
        /// violence, intimidation and threats), and no child at work; or a single weak one
        /// where children work (`derived::visit_severity`).
        ForcedLabourLikely = 2 => "forced_labour_likely",
        /// A case whose latest follow-up found the child still working, classified neither
        /// hazardous nor a worst form (those keep their own alert).
        StillWorking = 3 => "still_working",
        /// A case classified hazardous child labour, open or still working at its latest
        /// follow-up.
        HazardousChildLabour = 4 => "hazardous_child_labour",
        /// A case where a worst form of child labour (C182 art. 3 a-c) is suspected, open or
        /// still working at its latest follow-up; or a visit that found several
        /// forced-labour indicators or a strong one where children work (forced labour of a
        /// child is a worst form, C182 art. 3 a).
        WorstFormSuspected = 5 => "worst_form_suspected",
    }
}

coded! {
    /// The levels of an administrative area tree, from the root. The code is also the name of
    /// the level's column in the index tables.
    pub enum AreaLevel {
        Country => "country",
        Region => "region",
        District => "district",
        Community => "community",
    }
}

coded! {
    /// The types of reference data a hub publishes.
    pub enum ReferenceType else Unknown {
        CountryProfile => "country_profile",
        Checklist => "checklist",
        Sectors => "sectors",
        ReferralServices => "referral_services",
        AdministrativeAreas => "administrative_areas",
        /// A type published by a newer hub: kept and synced, not used.
        Unknown => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_reads_and_writes_the_code() {
        for role in Role::ALL {
            let json = serde_json::to_value(role).unwrap();
            assert_eq!(json, serde_json::Value::String(role.as_str().into()));
            assert_eq!(serde_json::from_value::<Role>(json).unwrap(), role);
        }
        assert_eq!(Role::CommunityMonitor.in_words(), "a community monitor");
        assert_eq!(Role::Inspector.in_words(), "an inspector");
        assert!(serde_json::from_str::<Sex>("\"other\"").is_err());
        assert_eq!(
            serde_json::from_str::<ReferenceType>("\"school_calendar\"").unwrap(),
            ReferenceType::Unknown
        );
        assert_eq!(RecordKind::from_i64(3), Some(RecordKind::ChildCase));
        assert_eq!(RecordKind::ChildCase as i64, 3);
    }
}

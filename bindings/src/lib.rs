//! Vigie for Kotlin, Swift and Python: a thin uniffi layer over `vigie-core`.
//!
//! - `VigieStore` (from `open_store`, or a `Vault`): records, queries, history and conflicts,
//!   the case workflow (role-aware: the acting user's `Role` is passed to every step) and the
//!   review of visits, alerts, duplicate children, indicators, exports, reference data in a
//!   language (`reference`), sync with the hub (bytes out / bytes in, or one call through the
//!   app's `SyncTransport`), bundles and peer sessions, change listeners, hand-over of cases.
//! - `Vault` (from `open_vault`): several users on one phone, each with a store under its own
//!   key, unlocked by PIN or keystore; wrong PINs counted to a wipe; key rotation; wiping.
//! - `ReferenceCatalog` (from `VigieStore.reference` or `builtin_reference`): reference data
//!   labelled in one language.
//! - Records mirror the core's (see `types` for the conventions: ids and dates are strings,
//!   `version` is opaque). `new_*` functions build new records with their defaults.
//! - Errors are one `VigieError` (Kotlin `VigieException`), converted from the core's in one
//!   place (`error`). Nothing panics across the boundary: uniffi catches a panic and raises it as
//!   an internal error (Kotlin `InternalException`, Python `InternalError`, Swift a thrown
//!   `rustPanic` from every throwing function — all store calls throw); a panicking app callback
//!   is contained too. The `test-hooks` feature adds `debug_panic` to prove it.
//!
//! **Blocking**: every `VigieStore` and `Vault` method, `open_store` and `open_vault` block on
//! SQLite or files (and `sync_with` on the transport for a whole session; PIN checks on
//! Argon2id): call them off the UI thread. The `new_*`, `reference_*`, `builtin_reference`,
//! `parse_enrolment_token`, `check_case_transition`, `shared_count` and `*_can_become`
//! functions, and `ReferenceCatalog` and `HandOver` methods, do not block.

uniffi::setup_scaffolding!();

mod error;
mod listeners;
mod monitoring;
mod reference;
mod store;
mod types;
mod vault;

pub use error::{TransportError, VigieError};
pub use listeners::{ChangeListener, ChangeSource, RecordChange, SyncProgressListener};
pub use monitoring::{
    Alert, AlertSeverity, ChildCounts, DuplicateCandidate, IndicatorFilter, Indicators,
    MergedCases, VisitReview, check_case_transition, shared_count,
};
pub use reference::{
    AreaInfo, CountryProfile, ForcedLabourItem, LabelledChecklist, LabelledItem, Provider,
    ReferenceCatalog, ReferenceVersions, ReferralService, builtin_reference,
};
pub use store::{PeerSession, PeerStart, SyncTransport, VigieStore, open_store};
pub use types::*;
pub use vault::{HandOver, Vault, VaultConfig, open_vault};

use uuid::Uuid;
use vigie_core::{
    AgeBasis, Area, CaseStatus, FollowUpSituation, Formality, Location, ReferenceData, Role,
    SchoolStatus, ServiceKind, Sex, VisitKind, VisitStatus,
};

/// A new workplace, with a fresh id, to pass to `create_workplace`.
#[uniffi::export]
pub fn new_workplace(name: String, sector: String, formality: Formality, area: Area) -> Workplace {
    Workplace {
        id: Uuid::now_v7().to_string(),
        version: String::new(),
        name,
        sector,
        formality,
        location: Location { point: None, area },
        owner_name: String::new(),
        owner_contact: String::new(),
        buyers: Vec::new(),
        suppliers: Vec::new(),
        notes: String::new(),
        captured_with: ReferenceVersions::default(),
    }
}

/// A new draft visit to a workplace (its id and area), with a fresh id, to pass to
/// `create_visit`. `started_at` is RFC 3339 with the phone's offset.
#[uniffi::export]
pub fn new_visit(
    kind: VisitKind,
    workplace_id: String,
    area: Area,
    visitor_id: String,
    started_at: String,
) -> Visit {
    Visit {
        id: Uuid::now_v7().to_string(),
        version: String::new(),
        kind,
        workplace_id,
        visitor_id,
        area,
        started_at,
        ended_at: None,
        gps: None,
        workforce: Workforce::default(),
        checklist: ChecklistAnswers::default(),
        forced_labour: Default::default(),
        findings: String::new(),
        actions: Vec::new(),
        follow_up_due: None,
        status: VisitStatus::Draft,
        review_comment: String::new(),
        reviewed_by: None,
        children_identified: Vec::new(),
        captured_with: ReferenceVersions::default(),
    }
}

/// A new child case (status identified), with a fresh id, to pass to `create_child_case`. Set
/// `date_of_birth` or `estimated_age` before creating it.
#[uniffi::export]
pub fn new_child_case(
    case_code: String,
    name: String,
    sex: Sex,
    area: Area,
    identified_on: String,
    identified_by: String,
) -> ChildCase {
    ChildCase {
        id: Uuid::now_v7().to_string(),
        version: String::new(),
        case_code,
        name,
        sex,
        date_of_birth: None,
        estimated_age: None,
        age_basis: AgeBasis::DeclaredByGuardian,
        guardian: String::new(),
        household: String::new(),
        area,
        workplace_id: None,
        identified_on_visit: None,
        identified_on,
        identified_by,
        school: SchoolStatus::Unknown,
        activity: String::new(),
        tasks: Vec::new(),
        hours_per_week: 0,
        night_work: false,
        hazards: Vec::new(),
        worst_forms: Vec::new(),
        classification: None,
        status: CaseStatus::Identified,
        referrals: Vec::new(),
        followups: Vec::new(),
        notes: String::new(),
        remediated_on: None,
        follow_up_due: None,
        merged_into: None,
        merged_from: Vec::new(),
        captured_with: ReferenceVersions::default(),
    }
}

/// A new active user, with a fresh id, to pass to `create_user`.
#[uniffi::export]
pub fn new_user(name: String, role: Role, areas: Vec<String>) -> User {
    User {
        id: Uuid::now_v7().to_string(),
        version: String::new(),
        name,
        role,
        areas,
        active: true,
    }
}

/// A new referral (date YYYY-MM-DD) for `add_referral`.
#[uniffi::export]
pub fn new_referral(service: ServiceKind, provider: String, date: String) -> Referral {
    Referral {
        id: Uuid::now_v7().to_string(),
        service,
        provider,
        date,
        outcome: String::new(),
    }
}

/// A new follow-up (dates YYYY-MM-DD) for `add_follow_up`.
#[uniffi::export]
pub fn new_follow_up(
    date: String,
    situation: FollowUpSituation,
    next_due: Option<String>,
) -> FollowUp {
    FollowUp {
        id: Uuid::now_v7().to_string(),
        date,
        situation,
        notes: String::new(),
        next_due,
    }
}

/// Whether a case may move from one status to another.
#[uniffi::export]
pub fn case_status_can_become(from: CaseStatus, to: CaseStatus) -> bool {
    from.can_become(to)
}

/// Whether a visit may move from one status to another.
#[uniffi::export]
pub fn visit_status_can_become(from: VisitStatus, to: VisitStatus) -> bool {
    from.can_become(to)
}

/// The device and user an enrolment token names.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct EnrolmentToken {
    pub device_id: String,
    pub user_id: String,
}

/// Reads the token `vigie device enrol` printed (`vgd1.<device>.<user>.<secret>`): open the
/// device's store with its ids, and send the whole token as `Authorization: Bearer <token>`.
/// A malformed token is `Authentication`.
#[uniffi::export]
pub fn parse_enrolment_token(token: String) -> Result<EnrolmentToken, VigieError> {
    let token = vigie_core::sync::EnrolmentToken::parse(&token).map_err(|_| {
        VigieError::Authentication {
            reason: "malformed enrolment token".into(),
        }
    })?;
    Ok(EnrolmentToken {
        device_id: token.device.to_string(),
        user_id: token.user.to_string(),
    })
}

/// The sector codes a workplace may have.
#[uniffi::export]
pub fn reference_sectors() -> Vec<ReferenceItem> {
    ReferenceData::builtin()
        .sectors()
        .iter()
        .map(Into::into)
        .collect()
}

/// The hazard codes a child case may list (the rule set's hazardous work list).
#[uniffi::export]
pub fn reference_hazards() -> Vec<ReferenceItem> {
    ReferenceData::builtin()
        .rule_set()
        .hazardous_work
        .iter()
        .map(Into::into)
        .collect()
}

/// The checklists a visit may answer.
#[uniffi::export]
pub fn reference_checklists() -> Vec<Checklist> {
    ReferenceData::builtin()
        .checklists()
        .iter()
        .map(Into::into)
        .collect()
}

/// Test hook (feature `test-hooks` only, never in a release): panics with `message`, to prove
/// that a Rust panic reaches the app as an exception and not as a crash. (It "returns" a
/// `Result` so that Swift declares it `throws`: Swift raises a panic as an error only from a
/// throwing function, and every `VigieStore` method throws.)
#[cfg(feature = "test-hooks")]
#[uniffi::export]
pub fn debug_panic(message: String) -> Result<(), VigieError> {
    panic!("{message}")
}

//! Vigie for Kotlin, Swift and Python: a thin uniffi layer over `vigie-core`.
//!
//! The records, enums, queries and summaries are the core's own (its `uniffi` feature; apps see
//! them in the module `vigie_core`, Kotlin package `org.vigie.core`). This crate adds the objects
//! that hold state and the calls on them:
//!
//! - `VigieStore` (from `open_store`, `open_unencrypted_store` or a `Vault`): records, queries
//!   (a page at a time, or every page with `*_pages`), history and conflicts, the case workflow
//!   (acting with the role the hub gave the store's user), the review of visits, alerts,
//!   duplicate children, indicators, exports, reference data in a language (`reference`), sync
//!   with the hub (bytes out / bytes in, or one call through the app's `SyncTransport`), bundles
//!   and peer sessions, change listeners, hand-over of cases, attachments (photos, documents,
//!   voice notes captured from a file, listed with their state, exported to a file; their bytes
//!   transferred by `sync_with` under a download policy).
//! - `Vault` (from `open_vault`): several users on one phone, each with a store under its own
//!   key, unlocked by PIN or keystore; wrong PINs counted to a wipe; key rotation; wiping.
//! - `ReferenceCatalog` (from `VigieStore.reference` or `builtin_reference`): reference data
//!   labelled in one language.
//! - `new_*` functions build new records with the core's own constructors.
//! - Errors are one `VigieError` (Kotlin `VigieException`), converted from the core's in one
//!   place (`error`), each with a sentence as its text. A malformed id, date or instant in a
//!   record is refused by `input` with a `Validation` error naming its field. Nothing panics
//!   across the boundary: uniffi catches a panic and raises it as an internal error (Kotlin
//!   `InternalException`, Python `InternalError`, Swift a thrown `rustPanic` from every throwing
//!   function — all store calls throw); a panicking app callback is contained too. The
//!   `test-hooks` feature adds `debug_panic` to prove it.
//!
//! **Blocking**: every `VigieStore`, `Vault` and `QueryPages` method, `open_store`,
//! `open_unencrypted_store` and `open_vault` block on SQLite or files (and `sync_with` on the
//! transport for a whole session; PIN checks on Argon2id): call them off the UI thread. The
//! `new_*`, `reference_*`, `builtin_reference`, `parse_enrolment_token`,
//! `check_case_transition`, `shared_count` and `*_can_become` functions, and `ReferenceCatalog`
//! and `HandOver` methods, do not block.

uniffi::setup_scaffolding!();

mod attachments;
mod error;
mod input;
mod listeners;
mod monitoring;
mod pages;
mod reference;
mod store;
mod sync;
mod vault;

pub use error::{TransportError, VigieError};
pub use listeners::{ChangeListener, ChangeSource, RecordChange, Removal};
pub use monitoring::{MergedCases, check_case_transition, shared_count};
pub use pages::{AlertPages, ChildCasePages, DuePages, VisitPages, WorkplacePages};
pub use reference::{
    AreaInfo, CountryProfile, ForcedLabourItem, LabelledChecklist, LabelledChecklistItem,
    LabelledItem, Provider, ReferenceCatalog, ReferralService, builtin_reference,
};
pub use store::{VigieStore, open_store, open_unencrypted_store};
pub use sync::{
    AttachmentSync, BundleExport, BundleReport, FailedAttachment, FailedRecord, PeerSession,
    PeerStart, RefusedRecord, SyncProgressListener, SyncReport, SyncSummary, SyncTransport,
};
pub use vault::{HandOver, Vault, VaultConfig, open_vault};

use uuid::Uuid;
use vigie_core::ffi::{CalendarDate, Timestamp};
use vigie_core::{
    Area, CaseStatus, ChildCase, FollowUp, FollowUpSituation, Formality, Referral, Role,
    ServiceKind, Sex, User, Visit, VisitKind, VisitStatus, Workplace,
};

// The core's text-borne types, as arguments of this crate's functions.
uniffi::use_remote_type!(vigie_core::Uuid);
uniffi::use_remote_type!(vigie_core::CalendarDate);
uniffi::use_remote_type!(vigie_core::Timestamp);

/// A new workplace, with a fresh id, to pass to `create_workplace`.
#[uniffi::export]
pub fn new_workplace(name: String, sector: String, formality: Formality, area: Area) -> Workplace {
    Workplace::new(&name, &sector, formality, area)
}

/// A new draft visit to a workplace (its id and area), with a fresh id, to pass to
/// `create_visit`. `started_at` is RFC 3339 with the phone's offset.
#[uniffi::export]
pub fn new_visit(
    kind: VisitKind,
    workplace_id: Uuid,
    area: Area,
    visitor_id: Uuid,
    started_at: Timestamp,
) -> Visit {
    Visit::to_workplace(kind, workplace_id, area, visitor_id, started_at)
}

/// A new child case (status identified), with a fresh id, to pass to `create_child_case`. Set
/// `date_of_birth` or `estimated_age` before creating it.
#[uniffi::export]
pub fn new_child_case(
    case_code: String,
    name: String,
    sex: Sex,
    area: Area,
    identified_on: CalendarDate,
    identified_by: Uuid,
) -> ChildCase {
    ChildCase::new(&case_code, &name, sex, area, identified_on, identified_by)
}

/// A new active user, with a fresh id, to pass to `create_user`.
#[uniffi::export]
pub fn new_user(name: String, role: Role, areas: Vec<String>) -> User {
    let areas: Vec<&str> = areas.iter().map(String::as_str).collect();
    User::new(&name, role, &areas)
}

/// A new referral (date YYYY-MM-DD) for `refer_case`.
#[uniffi::export]
pub fn new_referral(service: ServiceKind, provider: String, date: CalendarDate) -> Referral {
    Referral::new(service, &provider, date)
}

/// A new follow-up (dates YYYY-MM-DD) for `add_follow_up`; `next_due` is optional.
#[uniffi::export(default(next_due = None))]
pub fn new_follow_up(
    date: CalendarDate,
    situation: FollowUpSituation,
    next_due: Option<CalendarDate>,
) -> FollowUp {
    FollowUp::new(date, situation, next_due)
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
/// A malformed token is `Authentication`, its reason naming the part that is wrong.
#[uniffi::export]
pub fn parse_enrolment_token(token: String) -> Result<EnrolmentToken, VigieError> {
    let token = vigie_core::sync::EnrolmentToken::parse(&token).map_err(|e| {
        VigieError::Authentication {
            reason: e.to_string(),
        }
    })?;
    Ok(EnrolmentToken {
        device_id: token.device.to_string(),
        user_id: token.user.to_string(),
    })
}

/// The sector codes a workplace may have (the built-in list), labelled in French.
#[uniffi::export]
pub fn reference_sectors() -> Vec<LabelledItem> {
    builtin_reference("fr".into()).sectors(None)
}

/// The hazard codes a child case may list (the built-in profile's hazardous work list),
/// labelled in French.
#[uniffi::export]
pub fn reference_hazards() -> Vec<LabelledItem> {
    builtin_reference("fr".into())
        .country_profile(None)
        .map(|p| p.hazardous_work)
        .unwrap_or_default()
}

/// The checklists a visit may answer (every version), labelled in French.
#[uniffi::export]
pub fn reference_checklists() -> Vec<LabelledChecklist> {
    builtin_reference("fr".into()).checklists()
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

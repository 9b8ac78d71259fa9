//! The domain: records and their validation, the one stored code of each enum, reference data,
//! classification, the role matrix, and the values derived from a record's values. Pure: no
//! storage, no documents, no bytes. Nothing here imports a module above it (`tests/layers.rs`).
//!
//! Inside, each module imports only those listed before it:
//! `validation`, `codes`, `limits` → `area`, `attachment` → `reference::labels` → `classify` →
//! `reference::{content, builtin}` → `reference` → `records` → `rights` → `derived`.

pub mod area;
pub mod attachment;
pub mod classify;
pub mod codes;
pub mod derived;
pub mod limits;
pub mod records;
pub mod reference;
pub mod rights;
pub mod validation;

pub use area::{Area, AreaFilter, GeoPoint};
pub use attachment::{
    Attachment, AttachmentKind, AttachmentLimits, AttachmentRefusal, AttachmentState,
    DownloadPolicy,
};
pub use classify::{Classification, RuleSet, Situation, Thresholds};
pub use codes::*;
pub use limits::{DocumentLimit, DocumentLimits};
pub use records::{
    AgeBands, ChecklistAnswers, ChildCase, FollowUp, Location, Record, ReferenceDocument, Referral,
    Subject, User, UserProblem, Version, Visit, Workforce, Workplace,
};
pub use rights::{Principal, Scope, UserProfile, check_case_transition};
pub use validation::{NotAllowed, ValidationError};

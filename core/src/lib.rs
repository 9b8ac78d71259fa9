//! Vigie's core: typed field records (workplaces, visits, child cases, users), each one Automerge
//! document, in an encrypted SQLite store with query indexes, and a sans-IO sync engine.
//!
//! The crate knows nothing of FFI, HTTP or threads: the bindings and the hub wrap it. With the
//! `uniffi` feature (the bindings turn it on), its records, enums, queries and summaries are the
//! bindings' own types (`ffi`).
//!
//! Layers, each importing only those below it (`tests/layers.rs` checks every `crate::` path):
//!
//! | layer | modules | what |
//! |---|---|---|
//! | 0 | `domain` | records, validation, codes, reference data, classification, rights, derived values |
//! | 1 | `identity` | device keys, hub-signed certificates, revocation lists, sealing |
//! | 2 | `error` | the core's error, converted from the domain's |
//! | 3 | `codec` | stored bytes ⇄ Automerge documents, bounded |
//! | 4 | `doc` | records ⇄ Automerge documents: edits, conflicts, history |
//! | 5 | `storage` | the interface the hub's engine runs on |
//! | 6 | `store` | the SQLite store, its indexes and queries, the embedded hub storage |
//! | 7 | `sync`, `features` | sync (device, hub, peers, bundles); workflow, duplicates, indicators, exports, hand-over |
//! | 8 | `vault` | several users' stores on one phone |

pub mod codec;
pub mod doc;
pub mod domain;
pub mod error;
pub mod features;
#[cfg(feature = "uniffi")]
pub mod ffi;
pub mod identity;
pub mod messages;
pub mod storage;
pub mod store;
pub mod sync;
pub mod vault;

#[cfg(feature = "uniffi")]
uniffi::setup_scaffolding!();

// The modules under their earlier paths.
pub use codec::bounds;
pub use domain::{classify, rights};

/// Reference data (`domain::reference`), with the documents the hub publishes it in.
pub mod reference {
    pub use crate::domain::records::ReferenceDocument;
    pub use crate::domain::reference::*;
}
pub use features::{duplicates, export, handover, indicators, workflow};

/// The records and their enums (`domain`), under their earlier path.
pub mod model {
    pub use crate::domain::area::*;
    pub use crate::domain::codes::*;
    pub use crate::domain::records::*;
}

pub use domain::attachment::{
    Attachment, AttachmentKind, AttachmentLimits, AttachmentRefusal, AttachmentState,
    DownloadPolicy,
};
pub use domain::codes::*;
pub use domain::derived::{
    CHILD_LABOUR_CHECKLIST, NAME_SIMILARITY_THRESHOLD, case_alert_on, case_severity, fold_code,
    fold_name, name_similarity, visit_severity,
};
pub use domain::reference::{
    AreaGrant, CountryProfile, Labels, Pin, ReferenceContent, ReferenceData, ReferenceFile,
    ReferencePins,
};
pub use domain::{
    AgeBands, Area, AreaFilter, ChecklistAnswers, ChildCase, Classification, DocumentLimit,
    DocumentLimits, FollowUp, GeoPoint, Location, NotAllowed, Record, ReferenceDocument, Referral,
    RuleSet, Thresholds, User, UserProblem, UserProfile, Version, Visit, Workforce, Workplace,
    check_case_transition,
};

pub use doc::{ChangeAuthor, Conflict, ConflictValue, HistoryEntry};
pub use error::{Error, IdentityError, Result, ValidationError};
pub use features::duplicates::DuplicateCandidate;
pub use features::export::{ExportFormat, ExportOptions, ExportTable, TableWriter};
pub use features::handover::{HandOver, HandedCase};
pub use features::indicators::{
    Cell, ChildCounts, IndicatorFilter, Indicators, SharedChildCounts, SharedIndicators,
};
pub use features::workflow::Review;
pub use store::{
    Alert, AttachmentInfo, ChildCaseQuery, ChildCaseSummary, DueItem, Encryption, NewAttachment,
    Page, SearchHit, SortKey, Store, StoreConfig, StoreRole, VisitQuery, VisitSummary, Walked,
    WorkplaceQuery, WorkplaceSummary,
};
pub use vault::{Credential, KdfParams, Vault, VaultConfig};

//! Vigie's core: typed field records (workplaces, visits, child cases, users), each one Automerge
//! document, in an encrypted SQLite store with query indexes.
//!
//! The crate knows nothing of FFI, HTTP or threads: the bindings and the hub wrap it.

pub mod alerts;
pub mod bounds;
pub mod classify;
pub mod doc;
pub mod duplicates;
pub mod error;
pub mod export;
pub mod handover;
pub mod indicators;
pub mod model;
pub mod reference;
pub mod rights;
pub mod store;
pub mod sync;
pub mod vault;
pub mod workflow;

pub use alerts::{Alert, AlertSeverity, case_severity};
pub use bounds::{DocumentLimit, DocumentLimits};
pub use duplicates::{NAME_SIMILARITY_THRESHOLD, fold_name, name_similarity};
pub use export::{ExportFormat, ExportOptions, ExportTable};
pub use handover::{HandOver, HandedCase};
pub use indicators::{Cell, ChildCounts, IndicatorFilter, Indicators};
pub use vault::{Credential, KdfParams, Vault, VaultConfig};
pub use workflow::{Review, check_case_transition};

pub use classify::{Classification, ClassificationOutcome, RuleSet};
pub use doc::{ChangeAuthor, Conflict, ConflictValue, HistoryEntry};
pub use error::{Error, Result, ValidationError};
pub use model::*;
pub use reference::{
    AreaGrant, AreaLevel, CountryProfile, Labels, Pin, ReferenceContent, ReferenceData,
    ReferenceDocument, ReferenceFile, ReferencePins, ReferenceType,
};
pub use store::{
    ChildCaseQuery, ChildCaseSummary, DueItem, Encryption, Page, SearchHit, Store, StoreConfig,
    StoreRole, VisitQuery, VisitSummary, WorkplaceQuery, WorkplaceSummary,
};

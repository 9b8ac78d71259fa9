//! What users do with their records beyond reading and writing them, each over the store's
//! API and queries (no SQL of their own): the monitoring workflow (`workflow`), duplicate
//! children (`duplicates`), indicators (`indicators`), exports (`export`) and cases handed
//! from one user to another (`handover`). Alerts are a query of the store, from severities the
//! domain derives.

pub mod duplicates;
pub mod export;
pub mod handover;
pub mod indicators;
pub mod workflow;

//! The hub's integration suites: one module per file of this directory, built into one test
//! binary. As fifteen binaries, each compiled the shared helpers (`common`) again and was linked
//! on its own, a third of the workspace's test build.
//!
//! `scripts/run-tests.py` runs each module as a job of its own, in a process of its own (and the
//! modules it is told to, again on PostgreSQL); `cargo test -p vigie-server --test integration
//! -- <module>::` runs one.

mod common;

mod console;
mod hub_attachments;
mod hub_backup;
mod hub_crash;
mod hub_encryption;
mod hub_identity;
mod hub_irreversible;
mod hub_lifecycle;
mod hub_operation;
mod hub_protection;
mod hub_rules;
mod hub_rules_matrix;
mod hub_scale;
mod hub_security;
mod hub_surface;
mod hub_surface_admin;
mod hub_surface_logs;
mod hub_sync;
mod hub_tls;

//! The core's integration suites: one module per file of this directory, built into one test
//! binary. As eighteen binaries, each compiled the shared helpers (`common`) again and was
//! linked on its own, a third of the workspace's test build.
//!
//! `scripts/run-tests.py` runs each module as a job of its own, in a process of its own, as the
//! binaries ran before; `cargo test -p vigie-core --test integration -- <module>::` runs one.

mod common;

mod attachments;
mod bounds;
mod crash;
mod derived;
mod encryption;
mod fuzz;
mod identity;
mod layers;
mod lifecycle;
mod merge_props;
mod migrations;
mod monitoring;
mod records;
mod reference;
mod rights;
mod scoped;
mod sync;
mod vault;

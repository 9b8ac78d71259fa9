//! Shared helpers of the hub's integration tests: the real `vigie` binary run as a hub on
//! 127.0.0.1, its administration commands, device stores on real files, record builders, a TCP
//! proxy that cuts connections, and seeds.
//!
//! Split by topic: `seeds`, `backend` (embedded or PostgreSQL), `hub` (the process), `admin`
//! (the command line), `devices`, `records`, `http` (raw requests), `proxy` (cut links),
//! `field_work` (random edits), and the suites' own: `console`, `lifecycle`, `reference`, `rules`,
//! `surface`. Everything is re-exported here: tests name `common::Hub`, `common::Device`, ...
//!
//! Every suite uses a different part of this module.
#![allow(dead_code)]

mod admin;
mod backend;
pub mod console;
mod devices;
mod field_work;
mod http;
mod hub;
mod proxy;
mod records;
pub mod reference;
pub mod rules;
mod seeds;
pub mod surface;

// Each test binary uses some of them: the others would be unused imports there.
#[allow(unused_imports)]
pub use self::{
    admin::*, backend::*, devices::*, field_work::*, http::*, hub::*, proxy::*, records::*,
    seeds::*,
};

use automerge::{Automerge, ChangeHash};
use chrono::{FixedOffset, NaiveDate, TimeZone};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::channel;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use uuid::Uuid;
use vigie_core::sync::{Principal, SyncOptions, SyncSummary};
use vigie_core::*;
use vigie_server::auth::Token;
use vigie_server::client::HubClient;

/// The hub binary built by Cargo for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_vigie");

pub const COUNTRY: &str = "CI";
pub const REGION: &str = "CI-R1";
pub const DISTRICT: &str = "CI-R1-D1";
pub const C01: &str = "CI-R1-D1-C01";
pub const C02: &str = "CI-R1-D1-C02";
/// A district of the same region that no monitor or inspector of these tests covers.
pub const DISTRICT_2: &str = "CI-R1-D2";
pub const C07: &str = "CI-R1-D2-C07";

pub mod lifecycle;

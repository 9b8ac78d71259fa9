//! Helpers shared by the core's integration tests. Each test binary uses a part of them.
#![allow(dead_code)]

pub mod hostile;

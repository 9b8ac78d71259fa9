//! The hub's log: `RUST_LOG` chooses what is shown, within ceilings that keep record bytes out.
//!
//! Some libraries log what passes through them at debug or trace: the PostgreSQL driver logs
//! every statement's parameters (compressed documents, a child's name among them), HTTP
//! libraries their buffers, automerge the hostile input it refuses (a flood an attacker
//! controls). Their ceilings below hold whatever `RUST_LOG` asks; the hub's own crates log ids,
//! sizes and times, never content.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Libraries whose debug or trace output may carry request, response or statement bytes, and
/// the most they may log.
const CEILINGS: &[(&str, LevelFilter)] = &[
    // Statement parameters at debug.
    ("tokio_postgres", LevelFilter::INFO),
    ("postgres", LevelFilter::INFO),
    ("r2d2", LevelFilter::INFO),
    // Hostile documents at ERROR, unbounded in number.
    ("automerge", LevelFilter::OFF),
    // Buffers, headers (the device's token) and bodies at debug or trace.
    ("hyper", LevelFilter::INFO),
    ("hyper_util", LevelFilter::INFO),
    ("h2", LevelFilter::INFO),
    ("http_body_util", LevelFilter::INFO),
    ("axum", LevelFilter::INFO),
    ("axum_core", LevelFilter::INFO),
    ("tower", LevelFilter::INFO),
    ("tower_http", LevelFilter::INFO),
    ("ureq", LevelFilter::INFO),
    ("ureq_proto", LevelFilter::INFO),
    ("rustls", LevelFilter::INFO),
];

/// The ceilings as a filter: everything else passes to `RUST_LOG`'s choice.
pub fn ceilings() -> Targets {
    CEILINGS.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |t, (target, level)| t.with_target(*target, *level),
    )
}

/// The filter `RUST_LOG` asks for, else `default`.
fn requested(default: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default))
}

/// Sends the process's log to standard error: `RUST_LOG` (else `default`) under the ceilings.
pub fn init(default: &str) {
    let _ = tracing_subscriber::registry()
        .with(requested(default))
        .with(ceilings())
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // Colours for a person at a terminal, not escape codes in a log file.
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .try_init();
}

/// Lines a window at most, for what could otherwise write the log without bound: the lines
/// past the budget are counted, and said in one line when the next window logs. Refusals
/// that anyone can send, a few a second (`http`); a fault that lasts (a full disk, a database
/// down), once a period (`LogBudget::lasting`: said at every request, two phones retrying wrote
/// 160 lines in 40 s, to a log that is often on the disk that is full).
pub(crate) struct LogBudget {
    lines: u32,
    window: std::time::Duration,
    state: std::sync::Mutex<(Option<std::time::Instant>, u32, u64)>,
}

/// How often a lasting fault is said again (`LogBudget::lasting`).
pub(crate) const LASTING_FAULT_PERIOD: std::time::Duration = std::time::Duration::from_secs(10);

impl LogBudget {
    pub(crate) const fn new(lines: u32, window: std::time::Duration) -> LogBudget {
        LogBudget {
            lines,
            window,
            state: std::sync::Mutex::new((None, 0, 0)),
        }
    }

    /// One line every `LASTING_FAULT_PERIOD`.
    pub(crate) const fn lasting() -> LogBudget {
        LogBudget::new(1, LASTING_FAULT_PERIOD)
    }

    /// `Some(lines left unsaid since the last line)` if this one may be logged.
    pub(crate) fn take(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (window, lines, unsaid) = &mut *state;
        let now = std::time::Instant::now();
        if window.is_none_or(|w| now.duration_since(w) >= self.window) {
            *window = Some(now);
            *lines = 0;
        }
        if *lines >= self.lines {
            *unsaid += 1;
            return None;
        }
        *lines += 1;
        Some(std::mem::take(unsaid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn libraries_that_log_bytes_stay_at_info_or_above() {
        let caps = ceilings();
        for target in [
            "tokio_postgres::query",
            "tokio_postgres::prepare",
            "postgres",
            "r2d2",
            "hyper::proto::h1::io",
            "hyper_util::server",
            "axum::rejection",
            "ureq::unversioned::transport",
        ] {
            assert!(caps.would_enable(target, &Level::INFO), "{target} info");
            assert!(!caps.would_enable(target, &Level::DEBUG), "{target} debug");
            assert!(!caps.would_enable(target, &Level::TRACE), "{target} trace");
        }
        assert!(!caps.would_enable("automerge::storage", &Level::ERROR));
        // The hub's own crates are left to RUST_LOG.
        for target in ["vigie", "vigie_server::http", "vigie_core::sync"] {
            assert!(caps.would_enable(target, &Level::TRACE), "{target}");
        }
    }

    #[test]
    fn a_lasting_fault_is_said_once_a_period_with_its_count() {
        let fault = LogBudget::lasting();
        assert_eq!(fault.take(), Some(0));
        assert_eq!(fault.take(), None);
        assert_eq!(fault.take(), None);
        fault.state.lock().unwrap().0 = Some(std::time::Instant::now() - LASTING_FAULT_PERIOD);
        assert_eq!(fault.take(), Some(2));
    }
}

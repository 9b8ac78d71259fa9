//! Peak memory of a device applying the hostile documents of `tests/common/hostile.rs` (deep
//! nesting, a DEFLATE bomb, an operations bomb, many changes, a huge field, a long text) through
//! the paths a device reads them on: a pull and a merge (bundles and peer messages reach the same
//! merge only from a certified sender). Prints JSON lines:
//! `{"bench": "hostile_documents", "metric": "...", "value": ..., "unit": "MiB"}`.
//!
//! `cargo run --release -p vigie-core --example hostile_documents`. The documents are built in
//! this process and applied in a child process, so that building them (a 200 MB string for the
//! DEFLATE bomb) does not count in the figure.

#[path = "../tests/common/hostile.rs"]
#[allow(dead_code)]
mod hostile;

use std::path::Path;
use uuid::Uuid;
use vigie_core::sync::SyncOptions;
use vigie_core::sync::wire::{self, PullEntry, SyncResponse};
use vigie_core::*;

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn line(metric: &str, value: f64, unit: &str) {
    println!(
        "{}",
        serde_json::json!({"bench": "hostile_documents", "metric": metric, "value": value, "unit": unit})
    );
}

fn apply(dir: &Path) {
    let mut store = Store::open(StoreConfig::new(
        dir.join("victim.db"),
        Encryption::Unencrypted,
        Uuid::now_v7(),
    ))
    .unwrap();
    let id: Uuid = std::fs::read_to_string(dir.join("id"))
        .unwrap()
        .parse()
        .unwrap();
    line("peak_rss_before", peak_rss_mib(), "MiB");
    let mut refused = 0;
    let mut documents = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("am") {
            continue;
        }
        documents += 1;
        let bytes = std::fs::read(&path).unwrap();
        refused += usize::from(store.merge_document(id, &bytes).is_err());
        let response = SyncResponse {
            acks: Vec::new(),
            records: vec![PullEntry {
                id,
                changes: bytes.clone(),
                hub_heads: Vec::new(),
            }],
            cursor: Default::default(),
            more: false,
            erased: Vec::new(),
            receipt: 0,
            tombstones: Vec::new(),
            left_scope: Vec::new(),
            profile: None,
            identity: None,
            attachment_limits: None,
            headless_documents: false,
            reoffer: false,
            incarnation: None,
            push_retry_in_seconds: None,
            hub_now_ms: None,
            waiting: None,
        };
        let report = store
            .hub_sync_apply(&wire::encode_response(&response), &SyncOptions::default())
            .unwrap();
        refused += report.failed.len();
        // Bundles and peer sessions read no document before the sender's certificate and
        // signature check (`core/tests/bounds.rs` runs these documents through both from a
        // certified sender): a merge is the path they share with the pull above.
        refused += usize::from(store.merge_document(id, &bytes).is_err());
    }
    line("documents", documents as f64, "documents");
    line("refusals", refused as f64, "refusals");
    line("peak_rss", peak_rss_mib(), "MiB");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, mode, dir] = args.as_slice()
        && mode == "apply"
    {
        return apply(Path::new(dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut device = Store::open(StoreConfig::new(
        dir.path().join("device.db"),
        Encryption::Unencrypted,
        Uuid::now_v7(),
    ))
    .unwrap();
    let mut case = ChildCase::new(
        "CASE-1",
        "Aya Kouamé",
        Sex::Female,
        Area::new("CI", "CI-R1", "CI-R1-D1", "CI-R1-D1-C01"),
        chrono::NaiveDate::from_ymd_opt(2026, 4, 1).unwrap(),
        device.user_id(),
    );
    case.estimated_age = Some(12);
    let case = device.create(&case).unwrap();
    let honest = device.export_document(case.id).unwrap();
    std::fs::write(dir.path().join("id"), case.id.to_string()).unwrap();
    for (i, h) in hostile::all(&honest, device.actor()).iter().enumerate() {
        std::fs::write(dir.path().join(format!("{i}.am")), &h.bytes).unwrap();
        line(
            &format!("input_bytes.{}", h.limit.as_str().replace(' ', "_")),
            h.bytes.len() as f64,
            "bytes",
        );
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("apply")
        .arg(dir.path())
        .output()
        .unwrap();
    print!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

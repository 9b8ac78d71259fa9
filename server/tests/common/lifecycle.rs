//! Helpers for the tests of how records come and go: the hub's administration commands about
//! them (areas, erasure, quarantine review), hand-made sync requests, and byte searches of a
//! device's files.

use super::*;
use vigie_core::sync::wire::{self, PushEntry, PushOutcome, SyncRequest, SyncResponse};

/// `--data <data>`, and `--database <url>` when the suite runs on PostgreSQL.
pub fn hub_args(data: &Path) -> Vec<String> {
    let mut args = vec!["--data".to_string(), data.display().to_string()];
    args.extend(database_args(data));
    args
}

/// Runs `vigie <command...> <hub args> <rest...>`.
pub fn admin(data: &Path, command: &[&str], rest: &[&str]) -> std::process::Output {
    let hub = hub_args(data);
    let mut args: Vec<&str> = command.to_vec();
    args.extend(hub.iter().map(String::as_str));
    args.extend(rest);
    vigie_output(&args)
}

/// `vigie user role`: gives the user this role (`inspector`, `community-monitor`, ...).
pub fn set_role(data: &Path, user: Uuid, role: &str) {
    let user = user.to_string();
    let out = admin(data, &["user", "role"], &["--user", &user, "--role", role]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Accepts, as supervisor `by`, the entry kept for review of `record`, which must apply.
pub fn accept_entry_of(data: &Path, record: Uuid, by: Uuid) {
    let (text, entries) = quarantine_list(data);
    let entry = entries
        .iter()
        .find(|e| e["record"] == record.to_string())
        .unwrap_or_else(|| panic!("no entry of {record}: {text}"));
    assert_eq!(entry["state"], "applies", "{text}");
    let out = quarantine_accept(data, entry["entry"].as_i64().unwrap(), Some(by));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `vigie user areas`: gives the user these areas.
pub fn set_areas(data: &Path, user: Uuid, areas: &[&str]) {
    let user = user.to_string();
    let mut rest = vec!["--user", user.as_str()];
    for area in areas {
        rest.extend(["--area", area]);
    }
    let out = admin(data, &["user", "areas"], &rest);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `vigie erase`, as the supervisor `by`.
pub fn erase(data: &Path, record: Uuid, by: Uuid) {
    let (record, by) = (record.to_string(), by.to_string());
    let out = admin(
        data,
        &["erase"],
        &[
            "--record",
            &record,
            "--by",
            &by,
            "--reason",
            "consent_withdrawn",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `vigie quarantine list`: its raw output and one JSON value per entry.
pub fn quarantine_list(data: &Path) -> (String, Vec<serde_json::Value>) {
    let out = admin(data, &["quarantine", "list"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let entries = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    (text, entries)
}

/// `vigie quarantine accept --entry <entry> [--by <by>]`.
pub fn quarantine_accept(data: &Path, entry: i64, by: Option<Uuid>) -> std::process::Output {
    quarantine_review(data, "accept", entry, by)
}

/// `vigie quarantine accept|reject --entry N [--by supervisor]`.
pub fn quarantine_review(
    data: &Path,
    decision: &str,
    entry: i64,
    by: Option<Uuid>,
) -> std::process::Output {
    let entry = entry.to_string();
    let by = by.map(|b| b.to_string());
    let mut rest = vec!["--entry", entry.as_str()];
    if let Some(by) = &by {
        rest.extend(["--by", by.as_str()]);
    }
    admin(data, &["quarantine", decision], &rest)
}

/// A request from `device` without a cursor, as a device without one would send it.
pub fn request(
    device: &Device,
    push: Vec<PushEntry>,
    refetch: Vec<Uuid>,
    max_response_bytes: u32,
) -> Vec<u8> {
    wire::encode_request(&SyncRequest {
        actor: device.store.actor().to_bytes().to_vec(),
        cursor: None,
        push,
        refetch,
        max_response_bytes,
        receipt: 0,
        identity: None,
        headless_documents: false,
        incarnation: None,
        device_clock: None,
    })
}

/// Sends a hand-made request as `device`; returns the decoded response and its size on the
/// wire.
pub fn exchange(device: &Device, url: &str, request: &[u8]) -> (SyncResponse, usize) {
    let (status, body) = post_sync(
        &agent(),
        url,
        Some(&format!("Bearer {}", device.token_text)),
        request,
    )
    .expect("the hub answers");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let response = wire::decode_response(&body, 1 << 30).expect("a sync response");
    (response, body.len())
}

/// What the hub answers to `device` pushing `changes` as record `id`.
pub fn push_outcome(device: &Device, url: &str, id: Uuid, changes: &[u8]) -> PushOutcome {
    let push = vec![PushEntry {
        id,
        heads: Vec::new(),
        changes: changes.to_vec(),
    }];
    let (mut response, _) = exchange(device, url, &request(device, push, Vec::new(), 1 << 18));
    assert_eq!(response.acks.len(), 1);
    response.acks.remove(0).outcome
}

/// A device whose store is not encrypted, so that its files can be searched byte by byte.
pub fn plain_device(dir: &Path, data: &Path, name: &str, role: Role, areas: &[&str]) -> Device {
    let user = add_user(data, name, role, areas);
    let token_text = enrol(data, user);
    Device::open_with(dir, name, &token_text, role, areas, Encryption::Unencrypted)
}

/// The store's files (database, WAL) that hold these bytes.
pub fn store_files_holding(store: &Store, needle: &str) -> Vec<PathBuf> {
    ["", "-wal"]
        .iter()
        .map(|suffix| PathBuf::from(format!("{}{suffix}", store.path().display())))
        .filter(|p| {
            std::fs::read(p)
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
        .collect()
}

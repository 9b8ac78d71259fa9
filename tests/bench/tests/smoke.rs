//! The benchmarks still run: each on a tiny workload, its figures one JSON object per line.
//! (Their numbers are read by a person, from release builds; here only that they come.)

use std::process::Command;

/// Runs `vigie-bench <args>`, which must succeed; returns the metrics it printed.
fn bench(args: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_vigie-bench"))
        .args(args)
        .output()
        .expect("run vigie-bench");
    assert!(
        out.status.success(),
        "vigie-bench {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    for line in &lines {
        for key in ["bench", "metric", "unit"] {
            assert!(line[key].is_string(), "{line}");
        }
        assert!(line["value"].is_number(), "{line}");
    }
    lines
}

fn metric<'a>(lines: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    lines
        .iter()
        .find(|l| l["metric"] == name)
        .unwrap_or_else(|| panic!("no {name} in {lines:?}"))
}

#[test]
fn the_core_benchmark_writes_reads_and_measures_a_phone_store() {
    // Large enough for every district to have follow-ups overdue (the bench checks its lists).
    let lines = bench(&["core", "--scale", "0.05", "--sample", "3"]);
    assert!(metric(&lines, "records_written")["value"].as_f64().unwrap() > 0.0);
    assert!(
        metric(&lines, "db_bytes_per_record")["value"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    for edit in [
        "long_note_stretch_save_p99",
        "long_note_rewrite_save",
        "long_note_capitals_save",
    ] {
        assert!(
            metric(&lines, edit)["value"].as_f64().unwrap() > 0.0,
            "{edit}"
        );
    }
}

#[test]
fn the_sync_benchmark_syncs_an_empty_phone() {
    let lines = bench(&["sync", "--scale", "0.005", "--noop-scale", "0"]);
    assert!(!lines.is_empty());
}

#[test]
fn the_dictionary_is_trained_on_every_kind_of_record() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("d.zdict");
    let status = Command::new(env!("CARGO_BIN_EXE_vigie-bench"))
        .args(["dictionary", "--scale", "0.01", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(std::fs::metadata(&out).unwrap().len() > 0);
}

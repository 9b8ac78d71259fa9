//! The core's layers, checked from its sources: every `crate::` and `super::` path of every
//! module (in `use` lines and in code) may name only its own layer or a lower one, and the
//! modules form no circle. ARCHITECTURE.md states the same table.
//!
//! A module is a file of `core/src`, grouped into the units below (a directory such as `store/`
//! is one unit: its files share its private inside). Ranks go up the layers; inside the domain,
//! each unit may import only the units before it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The units, lowest first, with their rank. Units of one rank never import one another.
const UNITS: &[(&str, u32)] = &[
    ("domain::validation", 0),
    ("domain::codes", 0),
    ("domain::limits", 0),
    ("domain::area", 1),
    ("domain::attachment", 1),
    ("domain::reference::labels", 2),
    ("domain::classify", 3),
    ("domain::reference::content", 4),
    ("domain::reference::builtin", 5),
    ("domain::reference", 6),
    ("domain::records", 7),
    ("domain::rights", 8),
    ("domain::derived", 9),
    ("domain", 10),
    ("identity", 11),
    ("error", 12),
    ("codec", 13),
    ("doc", 14),
    ("storage", 15),
    ("store", 16),
    ("sync", 17),
    ("features", 17),
    ("vault", 18),
    ("ffi", 19),
    ("", 20),
];

/// The module path of a source file (`store/queries.rs` → `store::queries`).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The unit a module path belongs to: the longest unit that is a prefix of it.
fn unit_of(path: &[String]) -> &'static str {
    UNITS
        .iter()
        .map(|(unit, _)| *unit)
        .filter(|unit| {
            let unit: Vec<&str> = unit.split("::").filter(|p| !p.is_empty()).collect();
            unit.len() <= path.len() && unit.iter().zip(path).all(|(a, b)| a == b)
        })
        .max_by_key(|unit| unit.len())
        .expect("the root unit matches every path")
}

fn rank(unit: &str) -> u32 {
    UNITS.iter().find(|(u, _)| *u == unit).expect("a unit").1
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read core/src") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a line, without its comment (a doc comment names modules freely).
fn code_of(line: &str) -> &str {
    let trimmed = line.trim_start();
    if trimmed.starts_with("//") {
        return "";
    }
    match line.find(" // ") {
        Some(i) => &line[..i],
        None => line,
    }
}

/// The module paths a line names: `crate::a::b::Item` gives `a::b::Item` (the unit is found by
/// prefix); `super::x` is resolved from the file's own module.
fn paths_named(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for (start, _) in code.match_indices("crate::") {
        let rest = &code[start + "crate::".len()..];
        // `$crate` in a macro; uniffi's tag, which its scaffolding defines at the root.
        if code[..start].ends_with('$') || rest.starts_with("UniFfiTag") {
            continue;
        }
        assert!(
            !rest.starts_with('{'),
            "write one `use crate::path` per module, not `crate::{{…}}`: {code}"
        );
        found.push(segments(rest));
    }
    for (start, _) in code.match_indices("super::") {
        if start > 0 && code[..start].ends_with("::") {
            continue;
        }
        let rest = &code[start + "super::".len()..];
        let mut base = module.to_vec();
        base.pop();
        if rest.starts_with('{') || rest.starts_with('*') {
            found.push(base);
            continue;
        }
        base.extend(segments(rest));
        found.push(base);
    }
    found
}

fn segments(rest: &str) -> Vec<String> {
    rest.split("::")
        .map(|s| {
            s.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .take_while(|s| !s.is_empty() && s.chars().next().is_some_and(|c| c.is_ascii_lowercase()))
        .collect()
}

#[test]
fn no_module_imports_a_higher_layer_and_no_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut edges: BTreeMap<&'static str, BTreeSet<&'static str>> = BTreeMap::new();
    let mut upward = Vec::new();
    for file in &files {
        let mut module = module_of(&src, file);
        let from = unit_of(&module);
        let text = std::fs::read_to_string(file).expect("read a source");
        for (n, line) in text.lines().enumerate() {
            // An inline module (the unit tests at the end of a file) is one level down.
            if let Some(name) = line
                .strip_prefix("mod ")
                .and_then(|rest| rest.strip_suffix(" {"))
            {
                module.push(name.to_string());
            }
            for path in paths_named(code_of(line), &module) {
                let to = unit_of(&path);
                if to == from {
                    continue;
                }
                edges.entry(from).or_default().insert(to);
                if rank(to) >= rank(from) {
                    upward.push(format!(
                        "{}:{}: {from} (rank {}) names {to} (rank {})",
                        file.strip_prefix(&src).unwrap().display(),
                        n + 1,
                        rank(from),
                        rank(to)
                    ));
                }
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports of a layer not below:\n{}",
        upward.join("\n")
    );
    // With every edge going down the ranks there can be no circle; checked all the same, so
    // that a change of the table above cannot hide one.
    let mut done: BTreeSet<&str> = BTreeSet::new();
    while done.len() < edges.len() {
        let next = edges
            .iter()
            .find(|(unit, targets)| {
                !done.contains(*unit)
                    && targets
                        .iter()
                        .all(|t| done.contains(t) || !edges.contains_key(t))
            })
            .map(|(unit, _)| *unit);
        match next {
            Some(unit) => {
                done.insert(unit);
            }
            None => panic!(
                "a circle among {:?}",
                edges.keys().filter(|u| !done.contains(*u))
            ),
        }
    }
    // The domain is the lowest layer: it names nothing outside itself.
    for (unit, targets) in &edges {
        if unit.starts_with("domain") {
            assert!(
                targets.iter().all(|t| t.starts_with("domain")),
                "{unit} names {targets:?}"
            );
        }
    }
}

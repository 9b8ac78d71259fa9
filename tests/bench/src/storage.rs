//! Where a store's bytes go: each table's pages, its indexes' included, from SQLite's `dbstat`
//! (compiled into the bundled SQLCipher). Read after the store is closed, with its key.

use crate::BoxResult;
use std::collections::BTreeMap;
use std::path::Path;

/// The bytes of each table of the encrypted store at `path`, its indexes counted with it.
pub fn table_bytes(path: &Path, key: &[u8; 32]) -> BoxResult<BTreeMap<String, u64>> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    conn.execute_batch(&format!("PRAGMA key = \"x'{hex}'\";"))?;
    let mut stmt = conn.prepare(
        "SELECT coalesce(s.tbl_name, d.name), sum(d.pgsize) FROM dbstat d
         LEFT JOIN sqlite_schema s ON s.name = d.name GROUP BY 1",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    let mut tables = BTreeMap::new();
    for row in rows {
        let (table, bytes) = row?;
        tables.insert(table, bytes.max(0) as u64);
    }
    Ok(tables)
}

/// Emits `{metric}.{table}` in bytes per record, for the tables that take at least 1 % of the
/// file, and `{metric}.other` for the rest together.
pub fn emit_per_record(
    report: &crate::Report,
    metric: &str,
    tables: &BTreeMap<String, u64>,
    records: f64,
) {
    let total: u64 = tables.values().sum();
    let mut other = 0;
    for (table, &bytes) in tables {
        if bytes * 100 >= total {
            report.emit(&format!("{metric}.{table}"), bytes as f64 / records, "B");
        } else {
            other += bytes;
        }
    }
    report.emit(&format!("{metric}.other"), other as f64 / records, "B");
}

//! The query tables' secondary indexes, put aside while a device receives a whole scope.
//!
//! Records arrive in the hub's change order, not in the order of any query index: each one
//! adds an entry at a scattered place of every index on `visit_index`, `child_index`, ... Once
//! those indexes outgrow the page cache, nearly every entry reads and decrypts a page, and
//! every commit encrypts and writes it again: a region's first sync (150,000 records, a
//! 141 MB file) wrote 1.4 GB. Dropped for the walk and created at its end, one sort each, they
//! are written once (370 MB in all for the same sync).
//!
//! Only indexes made by `CREATE INDEX` that enforce nothing are put aside, and only on the
//! query tables (`index::QUERY_TABLES`): no rule and no step of a sync depends on them. Every
//! query still answers while they are aside, by scanning its table. The statements that made
//! them are kept in `meta` in the transaction that drops them, so a crash cannot lose them:
//! the store creates them again when it is next opened (`Store::open`).

use super::index::QUERY_TABLES;
use super::sync_state::{delete_meta, get_meta, set_meta};
use crate::error::{Error, Result};
use rusqlite::ffi;
use rusqlite::{Connection, Transaction};

/// The `meta` key holding the statements of the indexes put aside (a JSON array).
const KEY: &str = "deferred_indexes";

/// Whether the query tables' indexes are aside.
pub(crate) fn are_deferred(conn: &Connection) -> Result<bool> {
    Ok(get_meta(conn, KEY)?.is_some())
}

/// Drops the query tables' secondary indexes, keeping their statements; nothing when they are
/// aside already.
pub(crate) fn defer(tx: &Transaction) -> Result<()> {
    if are_deferred(tx)? {
        return Ok(());
    }
    let mut statements: Vec<(String, String)> = Vec::new();
    for table in QUERY_TABLES {
        let mut indexes = tx.prepare_cached(
            "SELECT l.name, s.sql FROM pragma_index_list(?1) l
             JOIN sqlite_schema s ON s.type = 'index' AND s.name = l.name
             WHERE l.origin = 'c' AND NOT l.\"unique\" AND s.sql IS NOT NULL
             ORDER BY l.name",
        )?;
        let rows = indexes.query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))?;
        for row in rows {
            statements.push(row?);
        }
    }
    for (name, _) in &statements {
        // The names come from the schema itself; quoting keeps them names.
        tx.execute_batch(&format!("DROP INDEX \"{}\"", name.replace('"', "\"\"")))?;
    }
    let kept: Vec<&str> = statements.iter().map(|(_, sql)| sql.as_str()).collect();
    set_meta(
        tx,
        KEY,
        &serde_json::to_vec(&kept).expect("strings serialize"),
    )?;
    Ok(())
}

/// Creates again the indexes put aside; false when none were.
pub(crate) fn restore(tx: &Transaction) -> Result<bool> {
    let Some(kept) = get_meta(tx, KEY)? else {
        return Ok(false);
    };
    let statements: Vec<String> = serde_json::from_slice(&kept)
        .map_err(|_| corrupt("the indexes put aside are unreadable"))?;
    for sql in &statements {
        // Only what `defer` kept: one `CREATE INDEX` each (`execute` refuses a second
        // statement).
        if !sql.starts_with("CREATE INDEX ") {
            return Err(corrupt("an index put aside is not an index"));
        }
        tx.execute(sql, [])?;
    }
    delete_meta(tx, KEY)?;
    Ok(true)
}

/// `restore` in a transaction of its own, committed if it made anything.
pub(crate) fn restore_now(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction()?;
    if restore(&tx)? {
        tx.commit()?;
    }
    Ok(())
}

/// What only a damaged file holds: SQLite's own error for it.
fn corrupt(what: &str) -> Error {
    Error::Storage(rusqlite::Error::SqliteFailure(
        ffi::Error::new(ffi::SQLITE_CORRUPT),
        Some(what.to_string()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migrated() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn, |_, _| Ok(())).unwrap();
        conn
    }

    fn schema_of(conn: &Connection) -> Vec<(String, String)> {
        conn.prepare("SELECT name, coalesce(sql, '') FROM sqlite_schema ORDER BY name")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|row| row.unwrap())
            .collect()
    }

    fn keep(conn: &mut Connection, kept: &[u8]) {
        let tx = conn.transaction().unwrap();
        set_meta(&tx, KEY, kept).unwrap();
        tx.commit().unwrap();
    }

    #[test]
    fn indexes_put_aside_come_back_as_they_were_and_only_query_indexes_go() {
        let mut conn = migrated();
        let before = schema_of(&conn);
        let tx = conn.transaction().unwrap();
        defer(&tx).unwrap();
        // Twice is once: the statements kept are not replaced by an empty list.
        defer(&tx).unwrap();
        tx.commit().unwrap();
        assert!(are_deferred(&conn).unwrap());
        let aside = schema_of(&conn);
        let gone: Vec<&(String, String)> = before.iter().filter(|e| !aside.contains(e)).collect();
        assert!(gone.len() >= 10, "{gone:?}");
        for (name, sql) in gone {
            assert!(
                sql.starts_with("CREATE INDEX ")
                    && QUERY_TABLES
                        .iter()
                        .any(|t| sql.contains(&format!(" ON {t}"))),
                "{name} is not a query index: {sql}"
            );
        }
        // The indexes a sync reads through stay.
        assert!(aside.iter().any(|(n, _)| n == "records_by_last_seq"));
        assert!(aside.iter().any(|(n, _)| n == "records_reference"));

        restore_now(&mut conn).unwrap();
        assert!(!are_deferred(&conn).unwrap());
        assert_eq!(schema_of(&conn), before);
    }

    #[test]
    fn statements_put_aside_that_are_not_one_index_are_refused_and_nothing_runs() {
        let mut conn = migrated();
        let before = schema_of(&conn);
        for kept in [
            &br#"["DROP TABLE records"]"#[..],
            br#"["CREATE INDEX x ON visit_index(status); DROP TABLE records"]"#,
            b"not json",
        ] {
            keep(&mut conn, kept);
            let refused = restore_now(&mut conn).unwrap_err();
            assert!(matches!(refused, Error::Storage(_)), "{refused:?}");
            assert_eq!(schema_of(&conn), before);
            assert!(are_deferred(&conn).unwrap());
        }
    }
}

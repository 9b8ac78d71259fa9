//! Opening the SQLite file: encryption key, pragmas, and migrations by `PRAGMA user_version`.

use crate::domain::codes::RecordKind;
use crate::error::{Error, Result};
use rusqlite::{Connection, OpenFlags, Transaction};
use std::path::Path;

/// Migrations in order; migration `i` takes the schema from version `i` to `i + 1`.
/// A shipped migration is never edited: a change to the schema is a new migration.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/001_records.sql"),
    include_str!("migrations/002_due_and_search.sql"),
    include_str!("migrations/003_sync.sql"),
    include_str!("migrations/004_fewer_indexes.sql"),
    include_str!("migrations/005_workflow_alerts.sql"),
    include_str!("migrations/006_scope_without_area_indexes.sql"),
    include_str!("migrations/007_reference_documents.sql"),
    include_str!("migrations/008_erasure_and_quarantine.sql"),
    include_str!("migrations/009_record_lifecycle.sql"),
    include_str!("migrations/010_places.sql"),
    include_str!("migrations/011_attachments.sql"),
    include_str!("migrations/012_identity.sql"),
    include_str!("migrations/013_area_codes.sql"),
    include_str!("migrations/014_compact_index_rows.sql"),
    include_str!("migrations/015_rederive_alerts.sql"),
    include_str!("migrations/016_alerts_end_at_18.sql"),
    include_str!("migrations/017_search_terms.sql"),
    include_str!("migrations/018_names_typed_with_marks.sql"),
    include_str!("migrations/019_refused_records.sql"),
    include_str!("migrations/020_attachment_uploads.sql"),
    include_str!("migrations/021_visit_local_day.sql"),
    include_str!("migrations/022_record_roots.sql"),
    include_str!("migrations/023_device_actors.sql"),
    include_str!("migrations/024_given_up_changes.sql"),
    include_str!("migrations/025_hub_heads_kept.sql"),
    include_str!("migrations/026_search_terms_again.sql"),
    include_str!("migrations/027_refused_changes.sql"),
    include_str!("migrations/028_follow_ups_end_at_18.sql"),
    include_str!("migrations/029_search_forgets_corrected_names.sql"),
    include_str!("migrations/030_visits_by_start.sql"),
    include_str!("migrations/031_rules_derived_again.sql"),
    include_str!("migrations/032_visit_breaches.sql"),
    include_str!("migrations/033_names_folded_again.sql"),
    include_str!("migrations/034_children_without_case.sql"),
    include_str!("migrations/035_cases_in_age_conflict.sql"),
    include_str!("migrations/036_merged_codes_and_visit_alerts.sql"),
];

/// The schema version this software writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Which records a schema's new rules index again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rederive {
    /// Every record of a kind (`None`: every record).
    Kind(Option<RecordKind>),
    /// The records whose names (their own or a merged duplicate's) hold one of these letters:
    /// those a new way of folding names reads otherwise (`derived::fold_name`).
    NamesWith(&'static str),
}

/// The schemas that changed rules deriving index rows, each with the records whose rows it
/// changed: a file older than one is indexed again at its upgrade, those records (every record,
/// if two kinds or all are due). A file of the latest of these or later is not: indexing every
/// record took a region's phone 46 s here (minutes on a cheap phone) for schema 30, which only
/// added an index. A change to what index rows hold (a rule, a column) comes with a migration
/// and an entry here.
const REDERIVED_AT: &[(i64, Rederive)] = &[
    // Cases: conflicts, early follow-ups, alert days, the stage reached.
    (31, Rederive::Kind(None)),
    // Visits: checklist items breached by a "yes", indicators from the forced-labour
    // checklist, children identified at work.
    (32, Rederive::Kind(Some(RecordKind::Visit))),
    // Names with letters of West African alphabets, folded as the letters they stand for.
    (
        33,
        Rederive::NamesWith(crate::domain::derived::NEWLY_FOLDED_AT_33),
    ),
    // Visits: children under 15 counted beyond the cases opened.
    (34, Rederive::Kind(Some(RecordKind::Visit))),
    // Cases: alert and due rows of an age in conflict, by the reading that keeps the child a
    // minor longest.
    (35, Rederive::Kind(Some(RecordKind::ChildCase))),
    // Cases: a merged duplicate's row names the case kept; alerts of verified cases, work
    // described without hours. Visits: a due day in conflict.
    (36, Rederive::Kind(None)),
];

/// The records a file of schema `found` must have indexed again (`REDERIVED_AT`): none, those
/// of one kind, or all (`Kind(None)`); and those of certain names, unless all are.
fn to_rederive(found: i64) -> Vec<Rederive> {
    let due: Vec<Rederive> = REDERIVED_AT
        .iter()
        .filter(|(at, _)| found < *at)
        .map(|(_, which)| *which)
        .collect();
    let mut kinds: Vec<Option<RecordKind>> = due
        .iter()
        .filter_map(|which| match which {
            Rederive::Kind(kind) => Some(*kind),
            Rederive::NamesWith(_) => None,
        })
        .collect();
    kinds.dedup();
    if kinds.contains(&None) || kinds.len() > 1 {
        return vec![Rederive::Kind(None)];
    }
    kinds
        .into_iter()
        .map(Rederive::Kind)
        .chain(
            due.into_iter()
                .filter(|which| matches!(which, Rederive::NamesWith(_))),
        )
        .collect()
}

/// How the store's file is protected.
#[derive(Clone)]
pub enum Encryption {
    /// SQLCipher with a raw 256-bit key (from the platform keystore; never a PIN).
    Key([u8; 32]),
    /// A plain SQLite file: for tests and tools only.
    Unencrypted,
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // The key must never reach a log.
            Encryption::Key(_) => f.write_str("Encryption::Key(..)"),
            Encryption::Unencrypted => f.write_str("Encryption::Unencrypted"),
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Opens (creating if needed) and configures a connection. Nothing is written before the key has
/// been checked, so a wrong key never damages the file.
pub(crate) fn open_connection(path: &Path, encryption: &Encryption) -> Result<Connection> {
    refuse_a_cut_file(path)?;
    // SQLCipher can refuse a key ("An error occurred with PRAGMA key") while another keyed
    // connection of the process is closing: about once in 60 runs of 16 threads that open and
    // close stores together, never when no store closes meanwhile. Applying a key writes
    // nothing, so a refused one is applied again on a fresh connection.
    let mut attempt = 0;
    let mut conn = loop {
        attempt += 1;
        // SQLite's message names the path, which may name a person (a profile's directory):
        // the error says what failed without it.
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|_| {
            Error::Io(std::io::Error::other(
                "the store's file cannot be opened or created (a missing directory, no permission)",
            ))
        })?;
        let Encryption::Key(key) = encryption else {
            break conn;
        };
        // SQLCipher logs a failed page check ("hmac check failed") on stderr: a wrong key is
        // this function's error to report, not a line in the app's or the hub's output.
        conn.execute_batch("PRAGMA cipher_log_level = NONE;")?;
        match conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", hex(key))) {
            Ok(()) => break conn,
            Err(_) if attempt < 5 => {
                drop(conn);
                std::thread::sleep(std::time::Duration::from_millis(attempt));
            }
            Err(e) => return Err(e.into()),
        }
    };
    // The first read of the schema is where a wrong key, or a file that is not a database,
    // shows.
    if let Err(e) = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    }) {
        return Err(match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => Error::WrongKeyOrNotAStore,
            _ => opening_error(e),
        });
    }
    // An 8 MiB page cache (SQLite's default is 2 MiB): every page SQLCipher reads again is
    // decrypted again, and a region's initial sync (150,000 records) took 17% longer with the
    // default. It costs about 10 MB of a phone's memory while the store is open.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA secure_delete = ON;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA busy_timeout = 5000;
         PRAGMA cache_size = -8192;",
    )
    .map_err(opening_error)?;
    // Statements are prepared once per connection (`prepare_cached`), and a record that leaves
    // a device runs some twenty: more than rusqlite keeps by default (16), so each one leaving
    // prepared them all again, a fifth of a narrowed scope's time on the phone. The store runs
    // about 80 statements in all; a prepared one costs a few KiB.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    // Names are listed as a person reads them: SQLite's NOCASE folds ASCII letters only, which
    // put "École" and "Élodie" after "Zoé", and one name typed with composed or decomposed
    // accents in two places.
    conn.create_collation(NAME_COLLATION, |a, b| {
        crate::domain::derived::fold_name(a)
            .cmp(&crate::domain::derived::fold_name(b))
            .then_with(|| a.cmp(b))
    })
    .map_err(opening_error)?;
    // A transaction that writes takes the write lock when it begins: begun deferred, it reads
    // first, and when another process (the hub's command line beside `vigie serve`, two
    // administrators) has written meanwhile it cannot write on top of what it read and fails
    // at once with "database is locked", whatever `busy_timeout` says. Taken at the start, it
    // waits its turn. A connection that only reads begins deferred (`HubReader`).
    conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
    Ok(conn)
}

/// A store's file emptied (cut to nothing by a failing card or file system, after a clean
/// close as beside a journal), or gone beside a journal that holds writes: SQLite would open it
/// as a new store (deleting the journal, the last trace of the records) and the phone would
/// carry on under its old identity with nothing, its offline work lost unsaid. It is not
/// opened. A new store's file is never left empty (it is made with its tables at once), so an
/// empty one is a cut one; removing it starts an empty store.
fn refuse_a_cut_file(path: &Path) -> Result<()> {
    let len = |path: &Path| std::fs::metadata(path).map(|m| m.len()).ok();
    let mut journal = path.as_os_str().to_owned();
    journal.push("-wal");
    let file = len(path);
    let journal_holds_writes = len(Path::new(&journal)).is_some_and(|n| n > 0);
    if file == Some(0) || (file.is_none() && journal_holds_writes) {
        return Err(Error::Io(std::io::Error::other(CUT_FILE)));
    }
    Ok(())
}

/// Why a cut store's file is not opened (`refuse_a_cut_file`).
const CUT_FILE: &str = "the store's file is empty, or gone beside a journal (-wal) that holds \
     writes: the file was cut, and it is not opened, so that nothing more is lost (restore it \
     from a copy, or remove it to start an empty store)";

/// SQLite's error on opening a store: an existing store whose file, or the directory its
/// journal goes in, cannot be written (a read-only mount, no permission) is said as a new
/// file's is, without the path (it may name a person).
fn opening_error(e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::ReadOnly) => {
            Error::Io(std::io::Error::other(
                "the store's file or its directory cannot be written (read-only, no permission)",
            ))
        }
        _ => Error::Storage(e),
    }
}

/// Prepared statements a connection keeps: every statement the store runs with
/// `prepare_cached`, with room to spare.
const STATEMENT_CACHE_CAPACITY: usize = 128;

/// The collation lists sort names by (`fold_name`: case, accents and word marks aside).
pub(crate) const NAME_COLLATION: &str = "vigie_name";

pub(crate) fn user_version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Applies every migration the file lacks, then rebuilds the index rows from the documents
/// once (of the records `REDERIVED_AT` names for the file), all in one transaction with the new version:
/// a failure leaves the file as it was.
/// Backfilling after the last migration matters: indexing code writes today's index tables,
/// which intermediate schemas do not have yet. Returns the version the file had before.
pub(crate) fn migrate(
    conn: &mut Connection,
    backfill: impl Fn(&Transaction, Rederive) -> Result<()>,
) -> Result<i64> {
    let found = user_version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found == SCHEMA_VERSION {
        return Ok(found);
    }
    // Tables without a schema version: no new file, nor one this software wrote whole.
    if found == 0
        && conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })? > 0
    {
        return Err(Error::Storage(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            None,
        )));
    }
    let tx = conn.transaction()?;
    for migration in &MIGRATIONS[found as usize..] {
        tx.execute_batch(migration)?;
    }
    // A new file has no documents to index.
    if found > 0 {
        for which in to_rederive(found) {
            backfill(&tx, which)?;
        }
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file is indexed again for what changed since its schema: every record when two kinds
    /// or all are due, else one kind and the names a new folding reads otherwise.
    #[test]
    fn a_file_is_indexed_again_for_the_rules_changed_since_its_schema() {
        assert_eq!(to_rederive(SCHEMA_VERSION), Vec::new());
        assert_eq!(to_rederive(35), vec![Rederive::Kind(None)]);
        assert_eq!(to_rederive(20), vec![Rederive::Kind(None)]);
    }
}

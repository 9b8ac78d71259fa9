//! Migrations from a frozen older schema.
//!
//! `fixtures/schema_v1.sql` is the schema as it shipped in version 1 (a copy of
//! `001_records.sql` with `PRAGMA user_version = 1`). A version-1 file is built from it by hand,
//! with real documents and only the index rows version 1 knew, and opened with the current
//! software: it must reach the current schema, read back every record, and answer the queries
//! that later schemas added. A second open must not migrate again, and a file from newer
//! software must be refused.

use crate::common;

use chrono::{FixedOffset, NaiveDate, TimeZone};
use common::date;
use rusqlite::types::Value;
use rusqlite::{Connection, params};
use std::collections::BTreeMap;
use std::path::Path;
use uuid::Uuid;
use vigie_core::store::SCHEMA_VERSION;
use vigie_core::{
    Area, AreaFilter, CaseStatus, ChildCase, ChildCaseQuery, Encryption, Error, FollowUp,
    FollowUpSituation, Formality, Page, Record, RecordKind, Role, Sex, Store, StoreConfig, User,
    Visit, VisitKind, VisitQuery, Workplace,
};

const SCHEMA_V1: &str = include_str!("fixtures/schema_v1.sql");
const USER: Uuid = Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0777);
const V1_DEVICE: Uuid = Uuid::from_u128(0x0194_aaaa_0000_4000_8000_0000_0000_0001);
const V1_NONCE: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

fn config(path: &Path) -> StoreConfig {
    StoreConfig::new(path, Encryption::Unencrypted, USER)
}

/// Records as a version-1 device would have held them.
struct Fixture {
    user: User,
    workplace: Workplace,
    /// With a follow-up planned for 2025-04-15.
    child_due: ChildCase,
    /// Without any follow-up.
    child_plain: ChildCase,
    /// With a follow-up due on 2025-05-02.
    visit: Visit,
    /// The bytes of each record's document, as `Store::export_document` gives them.
    documents: BTreeMap<Uuid, Vec<u8>>,
}

/// Writes the records in a current store and takes their documents out of it.
fn make_documents(dir: &Path) -> Fixture {
    let path = dir.join("source.db");
    // A hub's store: the user record came from the hub, which alone writes users.
    let mut store = Store::open(config(&path).role(vigie_core::store::StoreRole::Hub))
        .expect("open the source store");
    let area = Area::new("CI", "CI-GO", "CI-GO-SOU", "CI-GO-SOU-042");

    let user = store
        .create(&User::new(
            "Aya Traoré",
            Role::CommunityMonitor,
            &["CI-GO-SOU-042"],
        ))
        .expect("user");
    let mut w = Workplace::new(
        "Coopérative Kouassi Brou",
        "cocoa",
        Formality::Informal,
        area.clone(),
    );
    w.owner_name = "Kouassi Brou".into();
    let workplace = store.create(&w).expect("workplace");

    let started = FixedOffset::east_opt(0)
        .expect("offset")
        .with_ymd_and_hms(2025, 3, 3, 8, 15, 0)
        .single()
        .expect("time");
    let mut v = Visit::new(VisitKind::CommunityMonitoring, &workplace, user.id, started);
    v.findings = "Deux enfants au séchage des fèves.".into();
    v.follow_up_due = Some(date(2025, 5, 2));
    let visit = store.create(&v).expect("visit");

    let mut c = ChildCase::new(
        "CI-0001",
        "Kouamé Adjoa",
        Sex::Female,
        area.clone(),
        date(2025, 3, 3),
        user.id,
    );
    c.estimated_age = Some(11);
    c.workplace_id = Some(workplace.id);
    c.identified_on_visit = Some(visit.id);
    c.hours_per_week = 25;
    c.notes = "Porte des sacs de fèves.".into();
    c.followups.insert(
        Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0f01),
        FollowUp {
            date: date(2025, 3, 15),
            situation: FollowUpSituation::StillWorking,
            notes: "Toujours au champ.".into(),
            next_due: Some(date(2025, 4, 15)),
        },
    );
    let child_due = store.create(&c).expect("child case");

    let mut c = ChildCase::new(
        "CI-0002",
        "Éric N'Guessan",
        Sex::Male,
        area,
        date(2025, 3, 3),
        user.id,
    );
    c.date_of_birth = Some(date(2012, 6, 1));
    let child_plain = store.create(&c).expect("child case");

    let documents = [
        user.id,
        workplace.id,
        visit.id,
        child_due.id,
        child_plain.id,
    ]
    .into_iter()
    .map(|id| (id, store.export_document(id).expect("export")))
    .collect();
    store.close().expect("close");

    // The heads column as this test computes it is what the store itself writes.
    let conn = Connection::open(&path).expect("open the source file");
    for (id, heads) in [
        (user.id, heads_column(&user)),
        (workplace.id, heads_column(&workplace)),
        (visit.id, heads_column(&visit)),
        (child_due.id, heads_column(&child_due)),
        (child_plain.id, heads_column(&child_plain)),
    ] {
        let stored: Vec<u8> = conn
            .query_row(
                "SELECT heads FROM records WHERE id = ?1",
                [id.as_bytes()],
                |r| r.get(0),
            )
            .expect("heads");
        assert_eq!(stored, heads, "heads of {id}");
    }
    drop(conn);
    Fixture {
        user,
        workplace,
        child_due,
        child_plain,
        visit,
        documents,
    }
}

/// `records.heads`: the record's head hashes, concatenated (as the store writes them).
fn heads_column<R: Record>(record: &R) -> Vec<u8> {
    record.version().heads().iter().flat_map(|h| h.0).collect()
}

fn midnight_ms(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        .timestamp_millis()
}

/// Inserts one record as version 1 stored it: a change-log entry, then the row pointing at it.
fn insert_v1_record<R: Record>(conn: &Connection, record: &R, doc: &[u8], at_ms: i64) -> i64 {
    let heads = heads_column(record);
    // A new record's only change is its head.
    conn.execute(
        "INSERT INTO change_log (record_id, kind, changes, user_id, device_id, origin, at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)",
        params![
            record.id().as_bytes(),
            R::KIND as i64,
            heads,
            USER.as_bytes(),
            V1_DEVICE.as_bytes(),
            at_ms
        ],
    )
    .expect("change_log row");
    let seq = conn.last_insert_rowid();
    conn.execute(
        "INSERT INTO records (id, kind, doc, heads, last_seq) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![record.id().as_bytes(), R::KIND as i64, doc, heads, seq],
    )
    .expect("records row");
    conn.last_insert_rowid()
}

/// Builds a version-1 file from the frozen schema, with version 1's index rows only.
fn build_v1_store(path: &Path, f: &Fixture) {
    let conn = Connection::open(path).expect("create the v1 file");
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .expect("WAL");
    assert_eq!(mode, "wal");
    conn.execute_batch(SCHEMA_V1).expect("the frozen v1 schema");
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('device_id', ?1), ('actor_nonce', ?2)",
        params![V1_DEVICE.as_bytes(), V1_NONCE],
    )
    .expect("meta");
    let at = 1_740_990_000_000;
    let doc = |id: Uuid| f.documents[&id].clone();

    let u = &f.user;
    let rowid = insert_v1_record(&conn, u, &doc(u.id), at);
    conn.execute(
        "INSERT INTO user_index (record, name, role) VALUES (?1, ?2, 'community_monitor')",
        params![rowid, u.name],
    )
    .expect("user_index");

    let w = &f.workplace;
    let rowid = insert_v1_record(&conn, w, &doc(w.id), at + 1_000);
    let a = &w.location.area;
    conn.execute(
        "INSERT INTO workplace_index (record, name, sector, country, region, district, community)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            rowid,
            w.name,
            w.sector,
            a.country,
            a.region,
            a.district,
            a.community
        ],
    )
    .expect("workplace_index");

    let v = &f.visit;
    let rowid = insert_v1_record(&conn, v, &doc(v.id), at + 2_000);
    let a = &v.area;
    conn.execute(
        "INSERT INTO visit_index (record, kind, workplace_id, visitor_id, started_ms, status,
                                  country, region, district, community)
         VALUES (?1, 'community_monitoring', ?2, ?3, ?4, 'draft', ?5, ?6, ?7, ?8)",
        params![
            rowid,
            v.workplace_id.as_bytes(),
            v.visitor_id.as_bytes(),
            v.started_at.timestamp_millis(),
            a.country,
            a.region,
            a.district,
            a.community
        ],
    )
    .expect("visit_index");

    for (i, c) in [&f.child_due, &f.child_plain].into_iter().enumerate() {
        let rowid = insert_v1_record(&conn, c, &doc(c.id), at + 3_000 + i as i64);
        let a = &c.area;
        conn.execute(
            "INSERT INTO child_index (record, case_code, name, sex, age, status, classification,
                                      identified_ms, country, region, district, community)
             VALUES (?1, ?2, ?3, ?4, ?5, 'identified', ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                rowid,
                c.case_code,
                c.name,
                if c.sex == Sex::Female {
                    "female"
                } else {
                    "male"
                },
                c.age_on(c.identified_on),
                c.classification.as_ref().map(|k| k.outcome.as_str()),
                midnight_ms(c.identified_on),
                a.country,
                a.region,
                a.district,
                a.community
            ],
        )
        .expect("child_index");
    }
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version");
    assert_eq!(version, 1, "the fixture sets user_version 1");
    conn.close().expect("close the v1 file");
}

/// Everything in the file: the schema, the user version and every row of every table
/// (the full-text index's shadow tables included).
type Snapshot = (
    i64,
    Vec<(String, String)>,
    BTreeMap<String, Vec<Vec<Value>>>,
);

fn snapshot(path: &Path) -> Snapshot {
    let conn = Connection::open(path).expect("open for a snapshot");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version");
    let schema: Vec<(String, String)> = conn
        .prepare("SELECT name, coalesce(sql, '') FROM sqlite_master ORDER BY name")
        .expect("sqlite_master")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows");
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .expect("tables")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows");
    let mut rows = BTreeMap::new();
    for table in tables {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{table}\" ORDER BY 1"))
            .expect("select");
        let n = stmt.column_count();
        let content: Vec<Vec<Value>> = stmt
            .query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows");
        rows.insert(table, content);
    }
    (version, schema, rows)
}

fn count(path: &Path, table: &str) -> i64 {
    Connection::open(path)
        .expect("open")
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .expect("count")
}

#[test]
fn frozen_v1_schema_is_the_shipped_migration_001() {
    // Migration 001 shipped: it must never change. The fixture is its frozen copy.
    let shipped = include_str!("../src/store/migrations/001_records.sql");
    assert!(
        SCHEMA_V1.starts_with(shipped),
        "migrations/001_records.sql differs from the schema that shipped as version 1"
    );
    assert!(SCHEMA_V1[shipped.len()..].contains("PRAGMA user_version = 1;"));
}

#[test]
fn v1_store_migrates_to_the_current_schema() {
    let dir = tempfile::tempdir().expect("temp dir");
    let f = make_documents(dir.path());
    let path = dir.path().join("v1.db");
    build_v1_store(&path, &f);
    let records_before = count(&path, "records");
    let log_before = count(&path, "change_log");

    let store = Store::open(config(&path)).expect("open the v1 store");
    assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
    assert_eq!(
        store.device_id(),
        V1_DEVICE,
        "the device id of version 1 is kept"
    );

    // Every record reads back exactly as it was written, version included.
    assert_eq!(store.get::<User>(f.user.id).expect("user"), f.user);
    assert_eq!(
        store.get::<Workplace>(f.workplace.id).expect("workplace"),
        f.workplace
    );
    assert_eq!(store.get::<Visit>(f.visit.id).expect("visit"), f.visit);
    for c in [&f.child_due, &f.child_plain] {
        assert_eq!(&store.get::<ChildCase>(c.id).expect("child case"), c);
    }
    assert_eq!(store.count(RecordKind::ChildCase).expect("count"), 2);
    assert_eq!(store.count(RecordKind::Visit).expect("count"), 1);
    assert_eq!(store.count(RecordKind::Workplace).expect("count"), 1);
    assert_eq!(store.count(RecordKind::User).expect("count"), 1);

    // Version 1's indexes still answer.
    let cases = store
        .child_cases(
            &ChildCaseQuery {
                area: Some(AreaFilter::Community("CI-GO-SOU-042".into())),
                status: Some(CaseStatus::Identified),
                classification: None,
                code: None,
            },
            Page::first(10),
        )
        .expect("child cases");
    let mut ids: Vec<Uuid> = cases.iter().map(|c| c.id).collect();
    ids.sort();
    let mut expected = vec![f.child_due.id, f.child_plain.id];
    expected.sort();
    assert_eq!(ids, expected);

    // Name search (schema 2), filled from the documents: accents and case are ignored.
    let hits = store.search_names("kouame", 10).expect("search");
    assert_eq!(
        hits.iter().map(|h| (h.id, h.kind)).collect::<Vec<_>>(),
        vec![(f.child_due.id, RecordKind::ChildCase)],
        "an unaccented query finds the accented name"
    );
    assert_eq!(hits[0].name, "Kouamé Adjoa");
    let hits = store.search_names("ERIC n'guessan", 10).expect("search");
    assert_eq!(
        hits.iter().map(|h| h.id).collect::<Vec<_>>(),
        vec![f.child_plain.id]
    );
    let hits = store.search_names("cooperative", 10).expect("search");
    assert_eq!(
        hits.iter().map(|h| (h.id, h.kind)).collect::<Vec<_>>(),
        vec![(f.workplace.id, RecordKind::Workplace)]
    );
    assert!(
        store.search_names("traore", 10).expect("search").is_empty(),
        "users are not in the name search"
    );

    // The due list (schema 2), filled from the documents.
    let due = store
        .follow_ups_due(None, None, date(2026, 1, 1), Page::first(10))
        .expect("due");
    assert_eq!(
        due.iter()
            .map(|d| (d.id, d.kind, d.due))
            .collect::<Vec<_>>(),
        vec![
            (f.child_due.id, RecordKind::ChildCase, date(2025, 4, 15)),
            (f.visit.id, RecordKind::Visit, date(2025, 5, 2)),
        ],
        "the child's planned follow-up and the visit's, soonest first"
    );
    assert!(due.iter().all(|d| d.assignee == f.user.id));
    let due = store
        .follow_ups_due(
            Some(AreaFilter::District("CI-GO-SOU".into())),
            Some(f.user.id),
            date(2025, 5, 1),
            Page::first(10),
        )
        .expect("due");
    assert_eq!(
        due.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![f.child_due.id]
    );
    // Visits by workplace and by visitor (schema 14 keeps the ids once, by number): the
    // visit's summary names them, an id no row names finds nothing.
    for (query, found) in [
        (
            VisitQuery {
                workplace_id: Some(f.workplace.id),
                ..Default::default()
            },
            vec![f.visit.id],
        ),
        (
            VisitQuery {
                visitor_id: Some(f.user.id),
                ..Default::default()
            },
            vec![f.visit.id],
        ),
        (
            VisitQuery {
                visitor_id: Some(f.workplace.id),
                ..Default::default()
            },
            vec![],
        ),
    ] {
        let visits = store.visits(&query, Page::first(10)).expect("visits");
        assert_eq!(visits.iter().map(|v| v.id).collect::<Vec<_>>(), found);
        for v in &visits {
            assert_eq!((v.workplace_id, v.visitor_id), (f.workplace.id, f.user.id));
        }
    }
    assert!(store.integrity_check().expect("integrity_check"));
    store.close().expect("close");

    // Migrating wrote no record and no change.
    assert_eq!(count(&path, "records"), records_before);
    assert_eq!(count(&path, "change_log"), log_before);

    // A second open finds nothing to migrate. As a sentinel, one row the schema-2 backfill
    // writes is removed by hand first: if the backfill ran again it would come back.
    let rowid: i64 = Connection::open(&path)
        .expect("open")
        .query_row(
            "SELECT rowid FROM records WHERE id = ?1",
            [f.child_due.id.as_bytes()],
            |r| r.get(0),
        )
        .expect("rowid");
    let removed = Connection::open(&path)
        .expect("open")
        .execute("DELETE FROM due_index WHERE record = ?1", [rowid])
        .expect("delete the sentinel");
    assert_eq!(removed, 1);
    let before = snapshot(&path);
    let store = Store::open(config(&path)).expect("second open");
    assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
    store.close().expect("close");
    let after = snapshot(&path);
    assert_eq!(before.0, after.0, "user_version changed on a second open");
    assert_eq!(before.1, after.1, "the schema changed on a second open");
    for (table, rows) in &before.2 {
        assert!(
            after.2[table] == *rows,
            "table {table} changed on a second open: a migration ran again"
        );
    }
    assert_eq!(
        before.2.keys().collect::<Vec<_>>(),
        after.2.keys().collect::<Vec<_>>()
    );
}

#[test]
fn store_from_newer_software_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("future.db");
    let store = Store::open(config(&path)).expect("create");
    store.close().expect("close");
    let newer = SCHEMA_VERSION + 1;
    let conn = Connection::open(&path).expect("open");
    // With a query index put aside, as a first sync of the newer software leaves it: this
    // version must not make it again in a file it cannot read.
    conn.execute_batch(
        "DROP INDEX due_by_date;
         INSERT INTO meta (key, value)
         VALUES ('deferred_indexes', CAST('[\"CREATE INDEX due_by_date ON due_index(due_ms)\"]' AS BLOB));",
    )
    .expect("an index put aside");
    conn.pragma_update(None, "user_version", newer)
        .expect("set user_version");
    drop(conn);
    let before = snapshot(&path);

    match Store::open(config(&path)) {
        Err(Error::SchemaTooNew { found, supported }) => {
            assert_eq!(found, newer);
            assert_eq!(supported, SCHEMA_VERSION);
        }
        Err(e) => panic!("a newer schema gave {e:?}, not SchemaTooNew"),
        Ok(_) => panic!("a store from newer software was opened"),
    }
    let after = snapshot(&path);
    assert!(before == after, "refusing the newer store changed it");
}

/// A file of an earlier schema opened not to be upgraded (a hub's command beside the earlier
/// version's running server) is refused as it is; opened as usual, it is upgraded.
#[test]
fn a_store_opened_without_upgrade_is_refused_untouched() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("earlier.db");
    file_at_schema(&path, SCHEMA_VERSION - 1);
    let before = snapshot(&path);
    match Store::open(config(&path).without_upgrade()) {
        Err(Error::UpgradeWithheld { found, supported }) => {
            assert_eq!((found, supported), (SCHEMA_VERSION - 1, SCHEMA_VERSION));
        }
        Err(e) => panic!("an earlier schema gave {e:?}, not UpgradeWithheld"),
        Ok(_) => panic!("a store of an earlier schema was opened without its upgrade"),
    }
    assert!(before == snapshot(&path), "refusing the store changed it");
    let store = Store::open(config(&path)).expect("upgraded");
    assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
    drop(store);
    // At this software's schema, opening without upgrade is opening.
    Store::open(config(&path).without_upgrade()).expect("opened");
}

#[test]
fn failed_migration_leaves_the_v1_file_as_it_was() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut f = make_documents(dir.path());
    // One document is damaged: the schema-2 backfill cannot index it.
    let damaged = f.child_plain.id;
    f.documents
        .insert(damaged, b"not an automerge document".to_vec());
    let path = dir.path().join("v1.db");
    build_v1_store(&path, &f);
    let before = snapshot(&path);

    match Store::open(config(&path)) {
        Err(e) => {
            // Each migration commits with the version it reaches, or not at all.
            let after = snapshot(&path);
            assert_eq!(after.0, 1, "a failed migration moved user_version ({e})");
            assert!(
                before == after,
                "a failed migration left part of its work ({e})"
            );
        }
        Ok(store) => {
            // Were the core to skip what it cannot index, the rest must still be served.
            assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
            assert_eq!(
                store.get::<ChildCase>(f.child_due.id).expect("read"),
                f.child_due
            );
        }
    }
}

/// A store file of today's schema, at `path`, taken back to schema `version` (20 or later).
fn file_at_schema(path: &Path, version: i64) {
    drop(Store::open(config(path)).expect("open"));
    let conn = Connection::open(path).expect("open the file");
    undo_schemas_after(&conn, version);
    conn.pragma_update(None, "user_version", version)
        .expect("the old version");
}

/// A store the previous version (schema 14) left, with the index rows its rules derived: the
/// classification and alert rules changed since, and alert severities were renumbered. Opening
/// it re-derives every row with today's rules, and the outbox keeps its order in the new numbers.
/// Takes a file of today's schema back to `version` for the schemas from 20 on, which only
/// added columns: each test of an older schema also undoes what those before 20 changed.
fn undo_schemas_after(conn: &Connection, version: i64) {
    const ADDED: &[(i64, &str)] = &[
        (
            36,
            "ALTER TABLE child_index DROP COLUMN merged_into;
             ALTER TABLE alert_index DROP COLUMN without_cases;
             ALTER TABLE alert_index DROP COLUMN with_cases;",
        ),
        (
            34,
            "ALTER TABLE visit_index DROP COLUMN under_15; DROP TABLE visit_named;",
        ),
        (31, "ALTER TABLE child_index DROP COLUMN reached;"),
        (30, "DROP INDEX visit_by_started;"),
        (
            29,
            "INSERT INTO name_search (name_search, rank) VALUES ('secure-delete', 0);",
        ),
        (28, "ALTER TABLE due_index DROP COLUMN adult_ms;"),
        (27, "DROP TABLE refused_changes;"),
        (
            26,
            "DROP INDEX child_by_visit; ALTER TABLE child_index DROP COLUMN visit;",
        ),
        (25, "DROP TABLE sync_hub_heads_kept;"),
        (24, "DROP TABLE given_up_changes;"),
        (23, "DROP TABLE device_actors;"),
        (
            22,
            "DROP INDEX records_by_root; ALTER TABLE records DROP COLUMN root;",
        ),
        (21, "ALTER TABLE visit_index DROP COLUMN offset_ms;"),
        (20, "ALTER TABLE attachments DROP COLUMN upload;"),
    ];
    for (schema, undo) in ADDED {
        if *schema > version {
            conn.execute_batch(undo)
                .unwrap_or_else(|e| panic!("undo schema {schema}: {e}"));
        }
    }
}

#[test]
fn a_schema_14_store_shows_todays_classifications_and_alerts() {
    use vigie_core::{AgeBands, AlertSeverity, ClassificationOutcome, ForcedLabourIndicator};
    let dir = tempfile::TempDir::new().expect("temp dir");
    let path = dir.path().join("phone.db");
    let area = Area::new("CI", "CI-GO", "CI-GO-SOU", "CI-GO-SOU-042");
    let (out_of_school, night, still, visit, grown_up) = {
        let mut store = Store::open(config(&path)).expect("open");
        let case = |code: &str, age: i32, hours: i32| {
            let mut c = ChildCase::new(
                code,
                "Koffi",
                Sex::Male,
                area.clone(),
                date(2025, 3, 3),
                USER,
            );
            c.estimated_age = Some(age);
            c.hours_per_week = hours;
            c
        };
        let mut c = case("CI-0101", 13, 14);
        c.school = vigie_core::SchoolStatus::DroppedOut;
        let out_of_school = store.create(&c).expect("case");
        let mut c = case("CI-0102", 9, 0);
        c.night_work = true;
        let night = store.create(&c).expect("case");
        let mut c = case("CI-0103", 11, 20);
        c.followups.insert(
            Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0f02),
            FollowUp {
                date: date(2025, 6, 3),
                situation: FollowUpSituation::StillWorking,
                notes: String::new(),
                next_due: None,
            },
        );
        let still = store.create(&c).expect("case");
        // 17 when identified: 18 since 2026-03-03, and no longer raising the alert its long
        // hours raised.
        let c = case("CI-0104", 17, 50);
        let grown_up = store.create(&c).expect("case");
        let w = store
            .create(&Workplace::new(
                "Campement",
                "cocoa",
                Formality::Informal,
                area.clone(),
            ))
            .expect("workplace");
        let started = FixedOffset::east_opt(0)
            .and_then(|o| o.with_ymd_and_hms(2025, 3, 3, 8, 0, 0).single())
            .expect("time");
        let mut v = Visit::new(VisitKind::LabourInspection, &w, USER, started);
        v.forced_labour
            .insert(ForcedLabourIndicator::DebtBondage, String::new());
        v.workforce.female = AgeBands {
            under_12: 2,
            ..AgeBands::default()
        };
        let visit = store.create(&v).expect("visit");
        (out_of_school, night, still, visit, grown_up)
    };

    // What schema 14 held: both children "not child labour" (1), no alert for them or for the
    // child still working, the visit's alert 1 (forced-labour indicators), and a worst form's
    // urgency (3, now 5) in the outbox for the visit.
    let conn = Connection::open(&path).expect("open the file");
    let rowid = |id: Uuid| -> i64 {
        conn.query_row(
            "SELECT rowid FROM records WHERE id = ?1",
            [id.as_bytes()],
            |r| r.get(0),
        )
        .expect("rowid")
    };
    for id in [out_of_school.id, night.id] {
        conn.execute(
            "UPDATE child_index SET classification = 1 WHERE record = ?1",
            [rowid(id)],
        )
        .expect("old classification");
    }
    conn.execute(
        "DELETE FROM alert_index WHERE kind = ?1",
        [RecordKind::ChildCase as i64],
    )
    .expect("old alerts");
    conn.execute("UPDATE alert_index SET severity = 1", [])
        .expect("old severity");
    conn.execute(
        "UPDATE sync_outbox SET priority = 3 WHERE record_id = ?1",
        [visit.id.as_bytes()],
    )
    .expect("old priority");
    // Schema 16's column: the alert rows of schema 14 had no 18th birthday.
    conn.execute("ALTER TABLE alert_index DROP COLUMN adult_ms", [])
        .expect("schema 14's alert rows");
    undo_schemas_after(&conn, 19);
    conn.pragma_update(None, "user_version", 14)
        .expect("version 14");
    drop(conn);

    let store = Store::open(config(&path)).expect("open the schema 14 file");
    assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
    let listed = |outcome| {
        store
            .child_cases(
                &ChildCaseQuery {
                    classification: Some(outcome),
                    ..ChildCaseQuery::default()
                },
                Page::first(10),
            )
            .expect("cases")
            .into_iter()
            .map(|c| c.id)
            .collect::<Vec<_>>()
    };
    // Classified as when identified, a child: the one now 18 stays in the list.
    let mut hazardous = listed(ClassificationOutcome::HazardousChildLabour);
    hazardous.sort();
    let mut expected = vec![night.id, grown_up.id];
    expected.sort();
    assert_eq!(hazardous, expected);
    let mut labour = listed(ClassificationOutcome::ChildLabour);
    labour.sort();
    let mut expected = vec![out_of_school.id, still.id];
    expected.sort();
    assert_eq!(labour, expected);
    let grown_up_row: i64 = Connection::open(&path)
        .expect("open")
        .query_row(
            "SELECT count(*) FROM alert_index a JOIN records r ON r.rowid = a.record
             WHERE r.id = ?1 AND a.adult_ms IS NOT NULL",
            [grown_up.id.as_bytes()],
            |r| r.get(0),
        )
        .expect("the alert row of the child now 18");
    assert_eq!(grown_up_row, 1, "kept, with the day it ended");
    let alerts: Vec<(Uuid, AlertSeverity)> = store
        .alerts(None, Page::first(10))
        .expect("alerts")
        .into_iter()
        .map(|a| (a.id, a.severity))
        .collect();
    assert_eq!(
        alerts,
        vec![
            (visit.id, AlertSeverity::WorstFormSuspected),
            (night.id, AlertSeverity::HazardousChildLabour),
            (still.id, AlertSeverity::StillWorking),
        ]
    );
    drop(store);
    let priority: i64 = Connection::open(&path)
        .expect("open")
        .query_row(
            "SELECT priority FROM sync_outbox WHERE record_id = ?1",
            [visit.id.as_bytes()],
            |r| r.get(0),
        )
        .expect("priority");
    assert_eq!(priority, AlertSeverity::WorstFormSuspected as i64);
}

/// A phone store holding one child named `name`, taken back to schema `version` with the
/// search terms that schema wrote (`terms`): opened again, migrated, it finds the child by each
/// of `typed`.
fn found_after_migration(name: &str, terms: &str, version: i64, typed: &[&str]) {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let path = dir.path().join("phone.db");
    let area = Area::new("CI", "CI-GO", "CI-GO-SOU", "CI-GO-SOU-042");
    let child = {
        let mut store = Store::open(config(&path)).expect("open");
        let mut c = ChildCase::new("CI-0201", name, Sex::Female, area, date(2025, 3, 3), USER);
        c.estimated_age = Some(11);
        store.create(&c).expect("case").id
    };
    let conn = Connection::open(&path).expect("open the file");
    conn.execute("UPDATE name_search SET terms = ?1", [terms])
        .expect("the old schema's terms");
    undo_schemas_after(&conn, version.max(19));
    conn.pragma_update(None, "user_version", version)
        .expect("the old version");
    drop(conn);

    let store = Store::open(config(&path)).expect("open the old file");
    assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
    for typed in typed {
        let hits: Vec<Uuid> = store
            .search_names(typed, 10)
            .expect("search")
            .into_iter()
            .map(|h| h.id)
            .collect();
        assert_eq!(hits, vec![child], "{typed}");
    }
}

#[test]
fn a_schema_17_store_finds_names_typed_with_separate_accents() {
    // What schema 17 indexed: the separate accent broke the word in two.
    found_after_migration(
        "Ame\u{301}lie N'Guessan",
        "ame lie n guessan nguessan",
        17,
        &["amelie", "Amélie", "amelie nguessan"],
    );
}

#[test]
fn a_schema_25_store_finds_a_name_with_a_lone_letter_typed_run_together() {
    // What schema 25 indexed: the lone letter only apart.
    found_after_migration(
        "Adjoua N Guessan",
        "adjoua n guessan",
        25,
        &[
            "nguessan",
            "Adjoua Nguessan",
            "n'guessan",
            "n guessan",
            "adjoua",
        ],
    );
}

#[test]
fn a_schema_32_store_finds_names_with_letters_of_west_african_alphabets() {
    // What schema 32 indexed: the letters as typed, which no French keyboard types.
    found_after_migration(
        "Moussa Ŋgom Ɗanjuma",
        "moussa ŋgom ɗanjuma",
        32,
        &["ngom", "Ŋgom", "moussa ngom", "danjuma"],
    );
}

#[test]
fn a_schema_18_store_gets_the_table_of_refused_records() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let path = dir.path().join("phone.db");
    drop(Store::open(config(&path)).expect("open"));
    // What schema 18 held: no table of the records the hub refused.
    let conn = Connection::open(&path).expect("open the file");
    conn.execute("DROP TABLE sync_refused", [])
        .expect("schema 18 had none");
    undo_schemas_after(&conn, 19);
    conn.pragma_update(None, "user_version", 18)
        .expect("version 18");
    drop(conn);

    let store = Store::open(config(&path)).expect("open the schema 18 file");
    assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
    drop(store);
    let held: i64 = Connection::open(&path)
        .expect("open")
        .query_row("SELECT count(*) FROM sync_refused", [], |r| r.get(0))
        .expect("the table is there");
    assert_eq!(held, 0);
}

#[test]
fn a_schema_24_store_gets_the_table_of_the_hubs_versions_kept() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let path = dir.path().join("phone.db");
    // What schema 24 held: no hub version kept apart from `sync_hub_heads`.
    file_at_schema(&path, 24);

    let store = Store::open(config(&path)).expect("open the schema 24 file");
    assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
    drop(store);
    let kept: i64 = Connection::open(&path)
        .expect("open")
        .query_row("SELECT count(*) FROM sync_hub_heads_kept", [], |r| r.get(0))
        .expect("the table is there");
    assert_eq!(kept, 0);
}

#[test]
fn a_schema_26_store_gets_the_table_of_changes_refused_from_their_author() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let path = dir.path().join("hub.db");
    file_at_schema(&path, 26);

    let store = Store::open(config(&path)).expect("open the schema 26 file");
    assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
    drop(store);
    let kept: i64 = Connection::open(&path)
        .expect("open")
        .query_row("SELECT count(*) FROM refused_changes", [], |r| r.get(0))
        .expect("the table is there");
    assert_eq!(kept, 0);
}

/// A schema 29 store takes the index the visits list reads newest first, without a filter
/// (a page sorted every visit of the store before), and lists as before.
#[test]
fn a_schema_29_store_lists_its_visits_from_an_index() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let path = dir.path().join("phone.db");
    let mut store = Store::open(config(&path)).expect("a store");
    let area = Area::new("CI", "CI-R1", "CI-R1-D1", "CI-R1-D1-C01");
    let place = Workplace::new("Champ", "cocoa", Formality::Informal, area);
    store.create(&place).expect("a workplace");
    drop(store);
    file_at_schema(&path, 29);
    // Rules that derive index rows changed at schema 31 (early follow-ups, conflicts, alert
    // days): a file of schema 29 is indexed again, which a row taken out by hand shows.
    let conn = Connection::open(&path).expect("open the file");
    conn.execute("DELETE FROM workplace_index", [])
        .expect("the workplace's row");
    drop(conn);
    let store = Store::open(config(&path)).expect("open the schema 29 file");
    assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
    drop(store);
    let conn = Connection::open(&path).expect("open the file");
    let plan: Vec<String> = conn
        .prepare(
            "EXPLAIN QUERY PLAN SELECT v.record FROM visit_index v
             ORDER BY v.started_ms DESC, v.record DESC LIMIT 50",
        )
        .expect("plan")
        .query_map([], |r| r.get::<_, String>(3))
        .expect("read")
        .map(|r| r.expect("a step"))
        .collect();
    assert!(
        plan.iter().any(|step| step.contains("visit_by_started")),
        "{plan:?}"
    );
    assert!(
        !plan.iter().any(|step| step.contains("TEMP B-TREE")),
        "{plan:?}"
    );
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM workplace_index", [], |r| r.get(0))
        .expect("count");
    assert_eq!(rows, 1, "the file's index rows were made again");
}

/// A name corrected on a store of schema 28 leaves the search index's file at once: its old
/// terms were kept in the index's segments until a merge, for anyone reading the file with
/// its key.
#[test]
fn a_schema_28_store_forgets_a_corrected_name_from_its_search_index() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let path = dir.path().join("phone.db");
    file_at_schema(&path, 28);
    // A name corrected under schema 28: its row replaced, its terms left in a segment.
    let conn = Connection::open(&path).expect("open the file");
    conn.execute_batch(
        "INSERT INTO name_search (rowid, name, terms) VALUES (999, 'Koffi', 'koffi ouattaraxx');
         DELETE FROM name_search WHERE rowid = 999;",
    )
    .expect("a correction of schema 28");
    drop(conn);

    let mut store = Store::open(config(&path)).expect("open the schema 28 file");
    assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
    let mut c = ChildCase::new(
        "CASE-1",
        "Adjoua Brouhahaxx",
        Sex::Female,
        Area::new("CI", "CI-R1", "CI-R1-D1", "CI-R1-D1-C01"),
        NaiveDate::from_ymd_opt(2026, 3, 1).expect("date"),
        store.user_id(),
    );
    c.estimated_age = Some(11);
    let mut c = store.create(&c).expect("create");
    c.name = "Adjoua Brou".into();
    store.update(&c).expect("corrected");
    drop(store);
    let conn = Connection::open(&path).expect("open");
    let mut blocks = conn
        .prepare("SELECT block FROM name_search_data")
        .expect("the index's segments");
    let held = blocks
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .expect("read")
        .map(|b| b.expect("a block"))
        .filter(|b| {
            b.windows(10)
                .any(|w| w == b"brouhahaxx" || w == b"ouattaraxx")
        })
        .count();
    assert_eq!(held, 0, "segments holding the corrected name");
}

#[test]
fn a_schema_19_store_knows_its_uploads_among_its_attachments() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let path = dir.path().join("phone.db");
    drop(Store::open(config(&path)).expect("open"));
    let conn = Connection::open(&path).expect("open the file");
    undo_schemas_after(&conn, 19);
    // Pending, uploaded, failed on a limit (an upload), failed on a hash (a download), not
    // downloaded.
    for (n, state, failure) in [
        (1u8, 0, None),
        (2, 1, None),
        (3, 5, Some("larger than the hub accepts per file")),
        (
            4,
            5,
            Some("the bytes received do not match the attachment's hash"),
        ),
        (5, 2, None),
    ] {
        conn.execute(
            "INSERT INTO attachments (id, record_id, file_key, sha256, size, state, failure)
             VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6)",
            rusqlite::params![[n; 16], [0u8; 16], [0u8; 32], [0u8; 32], state, failure],
        )
        .expect("row");
    }
    conn.pragma_update(None, "user_version", 19)
        .expect("version 19");
    drop(conn);
    drop(Store::open(config(&path)).expect("open the schema 19 file"));
    let uploads: Vec<u8> = Connection::open(&path)
        .expect("open")
        .prepare("SELECT id FROM attachments WHERE upload = 1 ORDER BY id")
        .expect("query")
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .expect("rows")
        .map(|id| id.expect("id")[0])
        .collect();
    assert_eq!(uploads, vec![1, 2, 3]);
}

/// A schema 20 store counted a visit in periods by its UTC day: a visit at 23:30 on 28 February
/// at UTC-3 fell in March. Migrated, it counts in February, the day its phone gave it, as a new
/// store does.
#[test]
fn a_schema_20_store_counts_visits_by_their_own_day() {
    use vigie_core::IndicatorFilter;
    let dir = tempfile::TempDir::new().expect("temp dir");
    let path = dir.path().join("phone.db");
    let area = Area::new("CI", "CI-GO", "CI-GO-SOU", "CI-GO-SOU-042");
    let february = IndicatorFilter {
        area: None,
        from: Some(date(2026, 2, 1)),
        until: Some(date(2026, 3, 1)),
    };
    {
        let mut store = Store::open(config(&path)).expect("open");
        let w = store
            .create(&Workplace::new(
                "Campement",
                "cocoa",
                Formality::Informal,
                area,
            ))
            .expect("workplace");
        let late = FixedOffset::west_opt(3 * 3600)
            .and_then(|o| o.with_ymd_and_hms(2026, 2, 28, 23, 30, 0).single())
            .expect("time");
        store
            .create(&Visit::new(VisitKind::LabourInspection, &w, USER, late))
            .expect("visit");
        assert_eq!(store.indicators(&february).expect("counts").visits, 1);
    }
    // Schema 20: no offset beside the instant.
    let conn = Connection::open(&path).expect("open the file");
    undo_schemas_after(&conn, 20);
    conn.pragma_update(None, "user_version", 20)
        .expect("version 20");
    drop(conn);
    let store = Store::open(config(&path)).expect("open the schema 20 file");
    assert_eq!(store.indicators(&february).expect("counts").visits, 1);
    let march = IndicatorFilter {
        area: None,
        from: Some(date(2026, 3, 1)),
        until: Some(date(2026, 4, 1)),
    };
    assert_eq!(store.indicators(&march).expect("counts").visits, 0);
}

/// A hub of schema 21 kept no record's root: opened, it finds each one's in its document, and
/// a copy of a record's document under another id is refused from then on.
#[test]
fn a_schema_21_hub_learns_where_each_records_history_starts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("hub.db");
    drop(common::hub_store(&path));
    let conn = Connection::open(&path).expect("open the file");
    undo_schemas_after(&conn, 21);
    conn.pragma_update(None, "user_version", 21)
        .expect("version 21");
    drop(conn);
    let store = Store::open(
        StoreConfig::new(&path, Encryption::Unencrypted, Uuid::now_v7())
            .role(vigie_core::StoreRole::Hub),
    )
    .expect("open the schema 21 hub");
    assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
    drop(store);
    let (records, rooted): (i64, i64) = Connection::open(&path)
        .expect("open")
        .query_row("SELECT count(*), count(root) FROM records", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("counts");
    assert!(records > 0);
    assert_eq!(rooted, records, "every record's root found");
}

/// Schema 35 keeps a case in an age conflict on the alert and due lists by the reading that
/// keeps the child a minor longest: a file of schema 34 has its cases' rows derived again at
/// its upgrade (an upgraded hub left children 16 by one reading off its alerts until their
/// case was edited), and since schema 36 every record's.
#[test]
fn a_schema_34_store_derives_its_rows_again() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let path = dir.path().join("phone.db");
    let mut store = Store::open(config(&path)).expect("a store");
    let area = Area::new("CI", "CI-R1", "CI-R1-D1", "CI-R1-D1-C01");
    store
        .create(&Workplace::new(
            "Champ",
            "cocoa",
            Formality::Informal,
            area.clone(),
        ))
        .expect("a workplace");
    let mut case = ChildCase::new(
        "CASE-1",
        "Awa Koné",
        Sex::Female,
        area,
        chrono::NaiveDate::from_ymd_opt(2026, 3, 2).expect("a day"),
        USER,
    );
    case.estimated_age = Some(11);
    case.hours_per_week = 20;
    store.create(&case).expect("a case");
    drop(store);
    file_at_schema(&path, 34);
    // Rows schema 34 derived otherwise, taken out by hand; and a workplace's, which schema
    // 36 indexes again.
    let conn = Connection::open(&path).expect("open the file");
    conn.execute_batch("DELETE FROM child_index; DELETE FROM workplace_index;")
        .expect("schema 34's rows");
    drop(conn);
    let store = Store::open(config(&path)).expect("open the schema 34 file");
    assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
    drop(store);
    let conn = Connection::open(&path).expect("open the file");
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).expect("count") };
    assert_eq!(count("SELECT count(*) FROM child_index"), 1);
    assert_eq!(count("SELECT count(*) FROM workplace_index"), 1);
}

/// Schema 36 names the case a merged duplicate was merged into: a file of schema 35 has its
/// cases' rows derived again at its upgrade, and the duplicate's code then finds the case kept.
#[test]
fn a_schema_35_store_finds_a_merged_registration_by_its_code() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let path = dir.path().join("phone.db");
    let mut store = Store::open(config(&path)).expect("a store");
    common::act_as(&mut store, Role::Supervisor, &["CI-R1"]);
    let area = Area::new("CI", "CI-R1", "CI-R1-D1", "CI-R1-D1-C01");
    let [kept, duplicate] = ["C01-000002", "C01-000001"].map(|code| {
        let mut case = ChildCase::new(
            code,
            "Awa Koné",
            Sex::Female,
            area.clone(),
            date(2026, 3, 2),
            USER,
        );
        case.estimated_age = Some(11);
        store.create(&case).expect("a case").id
    });
    store.merge_cases(kept, duplicate).expect("merged");
    drop(store);
    file_at_schema(&path, 35);
    let store = Store::open(config(&path)).expect("open the schema 35 file");
    let q = ChildCaseQuery {
        code: Some("C01-000001".into()),
        ..Default::default()
    };
    let found = store.child_cases(&q, Page::first(5)).expect("found");
    assert_eq!(found.iter().map(|c| c.id).collect::<Vec<_>>(), [kept]);
}

/// Schema 34 keeps the children under 15 a visit counted (the review queue's children without
/// a case): a file of schema 33 has its visits' rows derived again at its upgrade.
#[test]
fn a_schema_33_store_counts_the_children_its_visits_found() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let path = dir.path().join("phone.db");
    let mut store = Store::open(config(&path)).expect("a store");
    let area = Area::new("CI", "CI-R1", "CI-R1-D1", "CI-R1-D1-C01");
    let place = store
        .create(&Workplace::new("Mine", "cocoa", Formality::Informal, area))
        .expect("a workplace");
    let mut visit = Visit::new(
        VisitKind::LabourInspection,
        &place,
        USER,
        common::at(2026, 3, 2, 8),
    );
    visit.workforce.female.age_12_14 = 3;
    visit.workforce.male.under_12 = 1;
    store.create(&visit).expect("a visit");
    drop(store);
    file_at_schema(&path, 33);
    let store = Store::open(config(&path)).expect("open the schema 33 file");
    assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
    drop(store);
    let conn = Connection::open(&path).expect("open the file");
    let under_15: i64 = conn
        .query_row("SELECT under_15 FROM visit_index", [], |r| r.get(0))
        .expect("the visit's row");
    assert_eq!(under_15, 4);
}

/// Schema 32 reads checklist items by their wording ("Children below the minimum age
/// working" is breached by a "yes"): a file of schema 31 has its visits' rows derived again at
/// its upgrade. Schema 35 derives cases' again: two kinds due, every record is indexed again
/// (`schema::to_rederive`), where a file of 34 has its cases' alone (above).
#[test]
fn a_schema_31_store_derives_its_visits_rows_again() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let path = dir.path().join("phone.db");
    let mut store = Store::open(config(&path)).expect("a store");
    let area = Area::new("CI", "CI-R1", "CI-R1-D1", "CI-R1-D1-C01");
    let place = store
        .create(&Workplace::new("Champ", "cocoa", Formality::Informal, area))
        .expect("a workplace");
    let at = common::at(2026, 3, 2, 8);
    let mut visit = Visit::new(VisitKind::LabourInspection, &place, USER, at);
    visit.checklist.checklist = "child-labour".into();
    visit.checklist.version = 1;
    visit
        .checklist
        .answers
        .insert("CL01".into(), vigie_core::Answer::Yes);
    store.create(&visit).expect("a visit");
    drop(store);
    file_at_schema(&path, 31);
    // As schema 31 indexed them: a "yes" breached nothing; and a workplace's row taken out by
    // hand, which shows whether other kinds are indexed again.
    let conn = Connection::open(&path).expect("open the file");
    conn.execute_batch("UPDATE visit_index SET violation = 0; DELETE FROM workplace_index;")
        .expect("schema 31's rows");
    drop(conn);
    let store = Store::open(config(&path)).expect("open the schema 31 file");
    assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
    drop(store);
    let conn = Connection::open(&path).expect("open the file");
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).expect("count") };
    assert_eq!(
        count("SELECT count(*) FROM visit_index WHERE violation = 1"),
        1
    );
    assert_eq!(count("SELECT count(*) FROM workplace_index"), 1);
}

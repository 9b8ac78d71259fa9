//! Encryption at rest: no child's name, guardian, workplace or note may be found in the bytes of
//! an encrypted store's files (the database, its WAL and its shared-memory index), neither while
//! the store is open with data still in the WAL nor after it is closed. A wrong key, or no key,
//! must be refused without touching the file. An unencrypted store is scanned the same way as a
//! control: there the names are found, which shows that the scan would see them.

use chrono::NaiveDate;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use uuid::Uuid;
use vigie_core::{
    Area, ChildCase, Encryption, Error, Formality, RecordKind, Sex, Store, StoreConfig, Workplace,
};

const KEY: [u8; 32] = [
    0x3a, 0x91, 0x5c, 0x07, 0xe2, 0x4d, 0x88, 0x16, 0xb0, 0x6f, 0x21, 0xd9, 0x73, 0x0e, 0xa5, 0x4c,
    0x19, 0xf3, 0x62, 0x8b, 0x27, 0xcd, 0x50, 0x9e, 0x04, 0x7a, 0xe8, 0x35, 0xbb, 0x12, 0x6d, 0xc4,
];
/// Differs from `KEY` in one bit of its last byte.
const WRONG_KEY: [u8; 32] = {
    let mut k = KEY;
    k[31] ^= 0x01;
    k
};
const USER: Uuid = Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_00aa);
const RECORDS: usize = 200;

fn child_name(i: usize) -> String {
    format!("Kouamé Adjoa {i:04}")
}
fn guardian_name(i: usize) -> String {
    format!("Brou Ahoua {i:04}")
}
fn workplace_name(i: usize) -> String {
    format!("Coopérative N'Guessan Yédé {i:04}")
}
fn owner_name(i: usize) -> String {
    format!("Konan Amenan {i:04}")
}

/// ASCII pieces of the names, searched for without regard to case (the full-text index keeps
/// its tokens folded: "kouame", "adjoa").
const ASCII_NEEDLES: &[&str] = &["adjoa", "kouam", "ahoua", "guessan", "amenan", "konan"];

fn config(path: &Path, encryption: Encryption) -> StoreConfig {
    StoreConfig::new(path, encryption, USER)
}

struct Written {
    children: Vec<ChildCase>,
    workplaces: Vec<Workplace>,
}

/// Writes `n` workplaces and `n` child cases with distinctive names and notes, one write each.
fn populate(store: &mut Store, n: usize) -> Written {
    let area = Area::new("CI", "CI-GO", "CI-GO-SOU", "CI-GO-SOU-042");
    let identified = NaiveDate::from_ymd_opt(2025, 2, 3).expect("date");
    let mut written = Written {
        children: Vec::new(),
        workplaces: Vec::new(),
    };
    for i in 1..=n {
        let mut w = Workplace::new(
            &workplace_name(i),
            "cocoa",
            Formality::Informal,
            area.clone(),
        );
        w.owner_name = owner_name(i);
        w.owner_contact = format!("+225 07 {i:04} 55 12");
        w.notes = format!("Le gérant {} emploie des enfants la nuit.", owner_name(i));
        let w = store.create(&w).expect("create a workplace");

        let mut c = ChildCase::new(
            &format!("CI-{i:04}"),
            &child_name(i),
            [Sex::Female, Sex::Male][i % 2],
            area.clone(),
            identified,
            USER,
        );
        c.estimated_age = Some(9 + (i % 8) as i32);
        c.guardian = guardian_name(i);
        c.household = format!("Ménage de {} à Sassandra", guardian_name(i));
        c.workplace_id = Some(w.id);
        c.activity = "séchage des fèves".into();
        c.hours_per_week = 30;
        c.notes = format!(
            "{} porte des sacs lourds ; son tuteur {} dit qu'elle ne va plus à l'école.",
            child_name(i),
            guardian_name(i)
        );
        let c = store.create(&c).expect("create a child case");
        written.workplaces.push(w);
        written.children.push(c);
    }
    written
}

/// Every name written, as UTF-8 bytes.
fn name_needles(n: usize) -> Vec<String> {
    (1..=n)
        .flat_map(|i| {
            [
                child_name(i),
                guardian_name(i),
                workplace_name(i),
                owner_name(i),
            ]
        })
        .collect()
}

/// Finds any of many needles in a haystack in one pass: needles are bucketed by their first two
/// bytes, so that most positions cost one table lookup.
struct Scanner {
    needles: Vec<Vec<u8>>,
    by_prefix: Vec<Vec<usize>>,
}

impl Scanner {
    fn new(needles: impl IntoIterator<Item = Vec<u8>>) -> Scanner {
        let needles: Vec<Vec<u8>> = needles.into_iter().collect();
        let mut by_prefix = vec![Vec::new(); 1 << 16];
        for (i, n) in needles.iter().enumerate() {
            assert!(n.len() >= 2, "needles are at least two bytes");
            by_prefix[usize::from(n[0]) << 8 | usize::from(n[1])].push(i);
        }
        Scanner { needles, by_prefix }
    }

    /// The needles found in `hay`.
    fn found(&self, hay: &[u8]) -> Vec<String> {
        let mut hit = vec![false; self.needles.len()];
        for i in 0..hay.len().saturating_sub(1) {
            let bucket = &self.by_prefix[usize::from(hay[i]) << 8 | usize::from(hay[i + 1])];
            for &n in bucket {
                if !hit[n] && hay[i..].starts_with(&self.needles[n]) {
                    hit[n] = true;
                }
            }
        }
        hit.iter()
            .zip(&self.needles)
            .filter(|(h, _)| **h)
            .map(|(_, n)| String::from_utf8_lossy(n).into_owned())
            .collect()
    }
}

/// The store's files that exist (the database, `-wal`, `-shm`, and a `-journal` should one
/// appear), with their bytes.
fn store_files(db: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let dir = db.parent().expect("the store is in a directory");
    let stem = db
        .file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned();
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("read the directory") {
        let path = entry.expect("directory entry").path();
        let name = path.file_name().expect("file name").to_string_lossy();
        if name.starts_with(&stem) {
            files.insert(
                path.clone(),
                std::fs::read(&path).expect("read a store file"),
            );
        }
    }
    files
}

/// Scans every file of the store for the names (exact UTF-8) and for the ASCII needles
/// (ignoring case). Returns, per file, what was found.
fn scan(db: &Path, n: usize) -> BTreeMap<String, Vec<String>> {
    let names = Scanner::new(name_needles(n).into_iter().map(String::into_bytes));
    let ascii = Scanner::new(ASCII_NEEDLES.iter().map(|s| s.as_bytes().to_vec()));
    let mut found = BTreeMap::new();
    for (path, bytes) in store_files(db) {
        let mut hits = names.found(&bytes);
        hits.extend(ascii.found(&bytes.to_ascii_lowercase()));
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        found.insert(name, hits);
    }
    found
}

fn sizes(db: &Path) -> BTreeMap<String, usize> {
    store_files(db)
        .into_iter()
        .map(|(p, b)| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, b.len())
        })
        .collect()
}

fn assert_nothing_found(found: &BTreeMap<String, Vec<String>>, when: &str) {
    for (file, hits) in found {
        assert!(
            hits.is_empty(),
            "{when}: {file} holds {} plain-text names or pieces of names, e.g. {:?}",
            hits.len(),
            &hits[..hits.len().min(5)]
        );
    }
}

fn wal_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

#[test]
fn encrypted_store_holds_no_plain_names_open_or_closed_and_reads_back_with_its_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("vigie.db");
    let mut store = Store::open(config(&db, Encryption::Key(KEY))).expect("open");
    let written = populate(&mut store, RECORDS);

    // Open, the last writes are in the WAL (SQLite checkpoints it into the main file only
    // every 1000 pages): both files are scanned.
    let wal_len = std::fs::metadata(wal_path(&db)).map_or(0, |m| m.len());
    assert!(wal_len > 0, "the WAL should hold the latest writes");
    eprintln!("open store files: {:?}", sizes(&db));
    assert_nothing_found(&scan(&db, RECORDS), "store open");

    store.close().expect("close");
    eprintln!("closed store files: {:?}", sizes(&db));
    assert!(
        std::fs::metadata(wal_path(&db)).map_or(0, |m| m.len()) == 0,
        "close checkpoints and empties the WAL"
    );
    assert_nothing_found(&scan(&db, RECORDS), "store closed");
    let header = std::fs::read(&db).expect("read the db");
    assert!(
        !header.starts_with(b"SQLite format 3\0"),
        "an encrypted file must not start with SQLite's plain header"
    );

    // With the right key, everything reads back as written.
    let store = Store::open(config(&db, Encryption::Key(KEY))).expect("reopen with the key");
    assert_eq!(
        store.count(RecordKind::ChildCase).expect("count"),
        RECORDS as u64
    );
    assert_eq!(
        store.count(RecordKind::Workplace).expect("count"),
        RECORDS as u64
    );
    for c in &written.children {
        assert_eq!(&store.get::<ChildCase>(c.id).expect("read a child case"), c);
    }
    for w in &written.workplaces {
        assert_eq!(&store.get::<Workplace>(w.id).expect("read a workplace"), w);
    }
    // The indexes are readable too: accent-insensitive search through the encrypted file.
    let hits = store.search_names("kouame adjoa 0042", 10).expect("search");
    assert_eq!(
        hits.iter().map(|h| h.id).collect::<Vec<_>>(),
        vec![written.children[41].id]
    );
    store.close().expect("close");
}

#[test]
fn unencrypted_store_holds_the_names_in_plain_bytes_control() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("vigie.db");
    let n = 50;
    let mut store = Store::open(config(&db, Encryption::Unencrypted)).expect("open");
    populate(&mut store, n);

    let all_found = |found: &BTreeMap<String, Vec<String>>| -> Vec<String> {
        let mut all: Vec<String> = found.values().flatten().cloned().collect();
        all.sort();
        all.dedup();
        all
    };
    // The index tables hold child and workplace names as plain text: the scan must find every
    // one of them, and every ASCII piece. (Guardians and owners are only inside the documents,
    // which Automerge may compress; they are not required here.)
    let expect_found = |found: &[String], when: &str| {
        for i in 1..=n {
            for name in [child_name(i), workplace_name(i)] {
                assert!(found.contains(&name), "{when}: the scan missed {name:?}");
            }
        }
        for piece in ["adjoa", "kouam", "guessan"] {
            assert!(
                found.iter().any(|f| f == piece),
                "{when}: the scan missed {piece:?}"
            );
        }
    };
    expect_found(&all_found(&scan(&db, n)), "store open");
    store.close().expect("close");
    let found = scan(&db, n);
    expect_found(&found["vigie.db"], "store closed, main file");
}

/// Every file of the store, for comparing before and after a refused open.
fn snapshot(db: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let dir = db.parent().expect("dir");
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            let p = e.expect("entry").path();
            let bytes = std::fs::read(&p).expect("read");
            (p, bytes)
        })
        .collect()
}

fn assert_same_files(
    before: &BTreeMap<PathBuf, Vec<u8>>,
    after: &BTreeMap<PathBuf, Vec<u8>>,
    when: &str,
) {
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "{when}: files were created or removed"
    );
    for (path, bytes) in before {
        assert!(
            after[path] == *bytes,
            "{when}: {} was modified",
            path.display()
        );
    }
}

#[test]
fn wrong_key_or_no_key_is_refused_and_leaves_the_file_untouched() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("vigie.db");
    let mut store = Store::open(config(&db, Encryption::Key(KEY))).expect("open");
    let written = populate(&mut store, 20);
    store.close().expect("close");
    let before = snapshot(&db);

    match Store::open(config(&db, Encryption::Key(WRONG_KEY))) {
        Err(Error::WrongKeyOrNotAStore) => {}
        Err(e) => panic!("a wrong key gave {e:?}, not WrongKeyOrNotAStore"),
        Ok(_) => panic!("a wrong key opened the store"),
    }
    assert_same_files(&before, &snapshot(&db), "after a wrong key");

    match Store::open(config(&db, Encryption::Unencrypted)) {
        Err(Error::WrongKeyOrNotAStore) => {}
        Err(e) => panic!("opening without a key gave {e:?}, not WrongKeyOrNotAStore"),
        Ok(_) => panic!("an encrypted store opened without its key"),
    }
    assert_same_files(&before, &snapshot(&db), "after opening without a key");

    // The refused attempts did no harm: the right key still reads everything.
    let store = Store::open(config(&db, Encryption::Key(KEY))).expect("open with the key");
    assert!(store.integrity_check().expect("integrity_check"));
    for c in &written.children {
        assert_eq!(&store.get::<ChildCase>(c.id).expect("read"), c);
    }
    for w in &written.workplaces {
        assert_eq!(&store.get::<Workplace>(w.id).expect("read"), w);
    }
    store.close().expect("close");
}

/// A store's file cut to nothing beside a journal holding writes (a failing card): not opened
/// as a new store, which would have deleted the journal, the last trace of the records.
#[test]
fn a_store_file_cut_to_nothing_beside_its_journal_is_not_opened_as_new() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("vigie.db");
    let mut store = Store::open(config(&db, Encryption::Key(KEY))).expect("open");
    populate(&mut store, 5);
    let cut = dir.path().join("cut.db");
    let journal = dir.path().join("cut.db-wal");
    std::fs::copy(dir.path().join("vigie.db-wal"), &journal).expect("copy the journal");
    std::fs::write(&cut, b"").expect("an empty file");
    let held = std::fs::read(&journal).expect("journal");
    assert!(!held.is_empty());
    match Store::open(config(&cut, Encryption::Key(KEY))) {
        Err(Error::Io(e)) => assert!(e.to_string().contains("journal"), "{e}"),
        Err(e) => panic!("a cut file gave {e:?}"),
        Ok(_) => panic!("a cut file opened as a new store"),
    }
    assert_eq!(std::fs::read(&journal).expect("journal kept"), held);
    assert_eq!(std::fs::metadata(&cut).expect("file kept").len(), 0);
    // The file gone beside its journal; the file cut to nothing after a clean close (no
    // journal left), with or without attachments beside: not opened as new either.
    std::fs::remove_file(&cut).expect("remove");
    let refused = |path: &Path| match Store::open(config(path, Encryption::Key(KEY))) {
        Err(Error::Io(e)) => assert!(e.to_string().contains("the file was cut"), "{e}"),
        Err(e) => panic!("a cut file gave {e:?}"),
        Ok(_) => panic!("a cut file opened as a new store"),
    };
    refused(&cut);
    assert_eq!(std::fs::read(&journal).expect("journal kept"), held);
    let closed = dir.path().join("closed.db");
    let mut other = Store::open(config(&closed, Encryption::Key(KEY))).expect("open");
    populate(&mut other, 2);
    other.close().expect("close");
    assert!(!dir.path().join("closed.db-wal").exists());
    std::fs::write(&closed, b"").expect("cut to nothing");
    refused(&closed);
    std::fs::create_dir(vigie_core::store::attachments_dir(&closed)).expect("attachments");
    refused(&closed);
    // Removed, as the error says: an empty store starts there.
    std::fs::remove_file(&closed).expect("remove");
    Store::open(config(&closed, Encryption::Key(KEY)))
        .expect("a new store where the cut file was")
        .close()
        .expect("close");
    // A new store where nothing is: made.
    Store::open(config(&dir.path().join("new.db"), Encryption::Key(KEY)))
        .expect("a new store")
        .close()
        .expect("close");
    store.close().expect("close");
}

#[test]
fn unencrypted_file_opened_with_a_key_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("vigie.db");
    let mut store = Store::open(config(&db, Encryption::Unencrypted)).expect("open");
    populate(&mut store, 3);
    store.close().expect("close");
    let before = snapshot(&db);
    match Store::open(config(&db, Encryption::Key(KEY))) {
        Err(Error::WrongKeyOrNotAStore) => {}
        Err(e) => panic!("a key on a plain file gave {e:?}, not WrongKeyOrNotAStore"),
        Ok(_) => panic!("a plain file opened as an encrypted store"),
    }
    assert_same_files(
        &before,
        &snapshot(&db),
        "after opening a plain file with a key",
    );
}

#[test]
fn a_store_is_a_file_of_one_device_and_one_user() {
    let dir = tempfile::TempDir::new().unwrap();
    // Names SQLite would keep in memory (or in a temporary file) keep nothing once closed.
    for path in ["", " ", ":memory:", "file:x.db?mode=memory"] {
        match Store::open(config(Path::new(path), Encryption::Key(KEY))) {
            Err(Error::Validation(v)) => assert_eq!(v.field, "path", "{path:?}"),
            other => panic!("{path:?}: expected a validation error, got {other:?}"),
        }
    }
    let db = dir.path().join("device.db");
    match Store::open(StoreConfig::new(&db, Encryption::Key(KEY), Uuid::nil())) {
        Err(Error::Validation(v)) => assert_eq!(v.field, "user_id"),
        other => panic!("expected a validation error, got {other:?}"),
    }
    let device = Uuid::now_v7();
    let store = Store::open(config(&db, Encryption::Key(KEY)).device(device)).unwrap();
    store.close().unwrap();
    // Another user, or another device, is refused: the file holds what its user may see.
    let other_user = StoreConfig::new(&db, Encryption::Key(KEY), Uuid::now_v7());
    assert!(matches!(
        Store::open(other_user),
        Err(Error::NotAllowed { rule }) if rule.contains("another user")
    ));
    let other_device = config(&db, Encryption::Key(KEY)).device(Uuid::now_v7());
    assert!(matches!(
        Store::open(other_device),
        Err(Error::NotAllowed { rule }) if rule.contains("another device")
    ));
    let again = Store::open(config(&db, Encryption::Key(KEY)).device(device)).unwrap();
    assert_eq!(again.device_id(), device);
}

//! `vigie backup`: a consistent copy of a running embedded hub.
//!
//! Both files (`hub.db`, the records; `devices.db`, the devices, users' console accounts and the
//! audit journal) are copied with SQLite's online backup API, each from a read snapshot taken
//! one right after the other before either is copied: what the hub's WAL holds is in the copy,
//! writes go on meanwhile, and the two files show the hub as it was at one moment (a write
//! between the two snapshots is the only gap). The attachment files the `hub.db` snapshot holds
//! whole (`hub.db.attachments/`, photos and documents, each sealed under a key kept in
//! `hub.db`) are copied after it: a complete file never changes, so the copy matches the
//! snapshot; one erased meanwhile is gone, and the restored hub erases its record again. The
//! copies stay encrypted with the hub's key, which is not copied.

use rusqlite::Connection;
use rusqlite::backup::Backup;
use std::path::{Path, PathBuf};
use vigie_core::Encryption;

/// What `backup` wrote.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The database files written, each with its size in bytes.
    pub files: Vec<(PathBuf, u64)>,
    /// The attachment files copied, and their bytes in all.
    pub attachments: (usize, u64),
    /// When the snapshots were taken (milliseconds since the epoch).
    pub at_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("the backup's directory must be new or empty: {0} holds files")]
    NotEmpty(PathBuf),
    #[error("cannot write the backup in {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the hub's store: {0}")]
    Store(#[from] vigie_core::Error),
    /// The backup's own copy of a file (a full disk is the backup's, not the hub's).
    #[error("writing the backup's copy {path} failed: {source}")]
    Target {
        path: PathBuf,
        source: Box<vigie_core::Error>,
    },
    #[error("copying the hub into {path} failed: {source}")]
    Copy {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("reading the hub's files failed: {0}")]
    Read(rusqlite::Error),
    #[error("cannot read the hub's file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the copy of {0} does not check as whole")]
    Damaged(&'static str),
}

/// The file a backup holds its directory with while it copies (`backup`).
const CLAIM: &str = ".vigie-backup-in-progress";

/// The embedded hub's files, in the order their snapshots are taken.
const FILES: [&str; 2] = ["hub.db", "devices.db"];

/// What a backup's directory holds besides the hub's files: what it is and what restoring it
/// undoes, for whoever finds it.
pub const RESTORE_NOTE: &str = "\
A backup of a Vigie hub, made by `vigie backup`: hub.db, devices.db and hub.db.attachments/ \
(the photos and documents), encrypted with the hub's key, which is NOT in this directory \
(keep the key file apart, and safe: without it nothing here can be read).

To restore: stop `vigie serve`, move the data directory's hub.db, devices.db and \
hub.db.attachments aside (and the -wal and -shm files), copy both files and the \
hub.db.attachments directory of this backup into it, and start the hub with its key. Never mix \
files of two backups.

A restore takes the hub back to the moment of this backup:
- the restored hub logs \"this hub was restored from a backup\", and every device that \
synced with it sends again, at its next sync, the records, photos and documents it sent after \
the backup;
- erasures (`vigie erase`, the console's) and device revocations made after it are done \
again when the restored hub starts, from the journal beside its key file \
(irreversible.journal, or <key file>.irreversible.journal for a key file not named hub.key; \
kept apart from this backup: keep it with the key). A hub whose key is \
given as VIGIE_HUB_KEY keeps no journal: erase and revoke again by hand;
- devices enrolled after it are unknown to the restored hub: their syncs and bundles are \
refused, and what they recorded cannot be taken from them; a token no device had used at the \
backup is no longer refused for its age once restored (revoke or reissue it if it was lost);
- everything else done on the hub after it is undone and must be done again: reissued \
tokens, users added, changed or deactivated, quarantine decisions, reference data published, \
console accounts.
";

/// Copies the embedded hub in `data` into the new (or empty) directory `out`. A backup that
/// fails leaves nothing in `out` (nor `out`, if it made it): a half-made copy, restored,
/// lacked photos or held some cut short. `copied` is called once every file is copied, before
/// `RESTORE.txt` marks the backup whole: the audit entry of a copy of every child's data is
/// written before the copy is a backup (a process stopped between the two leaves a directory
/// the journal names, never a backup it does not).
pub fn backup(
    data: &Path,
    encryption: &Encryption,
    out: &Path,
    copied: &mut dyn FnMut(),
) -> Result<BackupReport, BackupError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BackupError::Io { path, source }
    };
    let existed = out.exists();
    if existed && std::fs::read_dir(out).map_err(io(out))?.next().is_some() {
        return Err(BackupError::NotEmpty(out.to_path_buf()));
    }
    // Claimed before anything is copied: two backups into one directory at once both found
    // it empty, wrote the same files, and one's failure removed the other's backup.
    std::fs::create_dir_all(out).map_err(io(out))?;
    let claim = out.join(CLAIM);
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&claim)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(BackupError::NotEmpty(out.to_path_buf()));
        }
        Err(e) => return Err(io(&claim)(e)),
    }
    // Another backup that ended between the check and the claim left its files.
    let others = std::fs::read_dir(out)
        .map_err(io(out))?
        .flatten()
        .any(|entry| entry.file_name() != CLAIM);
    if others {
        let _ = std::fs::remove_file(&claim);
        return Err(BackupError::NotEmpty(out.to_path_buf()));
    }
    let made = copy_into(data, encryption, out, copied).and_then(|report| {
        std::fs::remove_file(&claim)
            .map(|()| report)
            .map_err(io(&claim))
    });
    if made.is_err() {
        let _ = if existed {
            std::fs::read_dir(out).and_then(|entries| {
                entries.flatten().try_for_each(|entry| {
                    let path = entry.path();
                    if path.is_dir() {
                        std::fs::remove_dir_all(path)
                    } else {
                        std::fs::remove_file(path)
                    }
                })
            })
        } else {
            std::fs::remove_dir_all(out)
        };
    }
    made
}

fn copy_into(
    data: &Path,
    encryption: &Encryption,
    out: &Path,
    copied: &mut dyn FnMut(),
) -> Result<BackupReport, BackupError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BackupError::Io { path, source }
    };
    let copying = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BackupError::Copy { path, source }
    };
    // A read transaction on each file, one right after the other: each copy is of its
    // snapshot, whatever the hub writes meanwhile. Opened first: a wrong key makes nothing.
    let mut sources = Vec::new();
    for name in FILES {
        let source = data.join(name);
        let conn = vigie_core::store::open_keyed_connection(&source, encryption)?;
        conn.execute_batch("BEGIN")
            .and_then(|()| {
                conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                    r.get::<_, i64>(0)
                })
            })
            .map_err(BackupError::Read)?;
        sources.push((name, conn));
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o700)).map_err(io(out))?;
    }
    let at_ms = chrono::Utc::now().timestamp_millis();
    let mut files = Vec::new();
    for (name, source) in &sources {
        let target = out.join(name);
        let written = |source| BackupError::Target {
            path: target.clone(),
            source: Box::new(source),
        };
        let mut copy =
            vigie_core::store::open_keyed_connection(&target, encryption).map_err(written)?;
        Backup::new(source, &mut copy)
            .and_then(|backup| backup.step(-1))
            .map_err(copying(&target))?;
        check(&copy, name, &target)?;
        if *name == FILES[0] {
            // The hub that opens this copy after a restore takes a new incarnation, and tells
            // every device (`Store::prepare_incarnation`).
            vigie_core::store::mark_backup_copy(&copy, at_ms).map_err(written)?;
        } else {
            crate::auth::unused_tokens_without_end(&copy).map_err(copying(&target))?;
        }
        drop(copy);
        let bytes = std::fs::metadata(&target).map_err(io(&target))?.len();
        files.push((target, bytes));
    }
    // The attachments the snapshot of hub.db holds whole, listed before it ends.
    let hub_db = data.join(FILES[0]);
    let held = vigie_core::store::held_attachment_files(&sources[0].1, &hub_db)?;
    for (_, source) in sources {
        source.execute_batch("COMMIT").map_err(BackupError::Read)?;
    }
    let attachments = copy_attachments(
        &held,
        &vigie_core::store::attachments_dir(&out.join(FILES[0])),
    )?;
    copied();
    let note = out.join("RESTORE.txt");
    std::fs::write(&note, RESTORE_NOTE).map_err(io(&note))?;
    Ok(BackupReport {
        files,
        attachments,
        at_ms,
    })
}

/// Copies the attachment files `held` into `dir`, each synced to disk, then the directory: the
/// number copied and their bytes. A file gone since the snapshot was erased meanwhile.
fn copy_attachments(held: &[PathBuf], dir: &Path) -> Result<(usize, u64), BackupError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BackupError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let (mut count, mut bytes) = (0, 0);
    for source in held {
        let Some(name) = source.file_name() else {
            continue;
        };
        let target = dir.join(name);
        let mut from = match std::fs::File::open(source) {
            Ok(from) => from,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source_error) => {
                return Err(BackupError::ReadFile {
                    path: source.clone(),
                    source: source_error,
                });
            }
        };
        // Each side's failure names its own file: a full disk is the backup's, not the hub's.
        let mut to = std::fs::File::create(&target).map_err(io(&target))?;
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = match std::io::Read::read(&mut from, &mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(BackupError::ReadFile {
                        path: source.clone(),
                        source: e,
                    });
                }
            };
            std::io::Write::write_all(&mut to, &buffer[..n]).map_err(io(&target))?;
            bytes += n as u64;
        }
        to.sync_all().map_err(io(&target))?;
        count += 1;
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok((count, bytes))
}

/// Whether a copy reads back whole with the key.
fn check(copy: &Connection, name: &'static str, target: &Path) -> Result<(), BackupError> {
    let result: String = copy
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|source| BackupError::Copy {
            path: target.to_path_buf(),
            source,
        })?;
    if result != "ok" {
        return Err(BackupError::Damaged(name));
    }
    Ok(())
}

//! The store's files as a whole: re-encrypting them under a new key, and destroying them.

use super::{Store, schema};
use crate::error::{Error, Result};
use crate::store::Encryption;
use rusqlite::{Connection, params};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Where a re-key may be stopped, to leave the files as a crash at that point would (tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RekeyStop {
    /// The new file is written and synced; the old one is still the store.
    AfterExport,
    /// The new file has taken the old one's name; the store is not reopened.
    AfterRename,
}

/// A vault profile's key file, beside its store (`vault`): one of the files no export replaces.
pub(crate) const PROFILE_KEY_FILE: &str = "key.json";

/// The lock file at the top of a vault's directory (`vault`): what tells an export that a
/// directory holds the profiles of the phone's users, each store and key of which it must
/// never replace.
pub(crate) const VAULT_LOCK_FILE: &str = "vault.lock";

/// `<db><suffix>`: SQLite's `-wal`, `-shm` and `-journal`, and the re-key's files.
pub(crate) fn sidecar(db: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(db.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

const REKEY_SUFFIX: &str = ".rekey";

/// The files a re-key writes beside the store (the new file and SQLite's own beside it).
fn rekey_files(db: &Path) -> [PathBuf; 4] {
    ["", "-journal", "-wal", "-shm"].map(|s| sidecar(db, &format!("{REKEY_SUFFIX}{s}")))
}

/// Removes what an interrupted re-key left beside the store; never the store itself.
pub(crate) fn remove_rekey_leftovers(db: &Path) -> Result<()> {
    for path in rekey_files(db) {
        remove_if_exists(&path)?;
    }
    Ok(())
}

pub(crate) fn remove_if_exists(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Makes the directory's entries (files created, renamed or removed) durable: a rename is on
/// disk only once its directory is synced.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Removes the store's files (the database, its WAL, shared-memory index and journal, and any
/// re-key leftovers, the attachments' directory), then syncs the directory.
pub(crate) fn remove_store_files(db: &Path) -> Result<()> {
    match std::fs::remove_dir_all(super::attachments::dir_of(db)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    for path in [
        db.to_path_buf(),
        sidecar(db, "-wal"),
        sidecar(db, "-shm"),
        sidecar(db, "-journal"),
    ]
    .into_iter()
    .chain(rekey_files(db))
    {
        remove_if_exists(&path)?;
    }
    sync_dir(parent_dir(db))?;
    Ok(())
}

/// Copies every table, index, trigger and the schema version into a new file under `key`.
/// sqlcipher_export is SQLCipher's supported way to re-encrypt: `PRAGMA rekey` rewrites the
/// file in place, which is not possible in WAL mode, and a crash in the middle would leave a
/// file half under each key.
fn export_to(conn: &Connection, target: &Path, key: &Encryption) -> Result<()> {
    let target = target.to_str().ok_or_else(|| {
        Error::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the store's path is not UTF-8",
        ))
    })?;
    let key_spec = Zeroizing::new(match key {
        Encryption::Key(k) => format!("x'{}'", schema::hex(k)),
        Encryption::Unencrypted => String::new(),
    });
    conn.execute(
        "ATTACH DATABASE ?1 AS rekeyed KEY ?2",
        params![target, key_spec.as_str()],
    )?;
    let exported = (|| -> Result<()> {
        conn.query_row("SELECT sqlcipher_export('rekeyed')", [], |_| Ok(()))?;
        let version = schema::user_version(conn)?;
        conn.execute_batch(&format!("PRAGMA rekeyed.user_version = {version};"))?;
        Ok(())
    })();
    let detached = conn.execute_batch("DETACH DATABASE rekeyed");
    exported?;
    detached?;
    Ok(())
}

/// Checkpoints the whole WAL into the file and empties it. A WAL that cannot be emptied means
/// another connection is reading.
fn checkpoint(conn: &Connection) -> Result<()> {
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
    if busy != 0 {
        return Err(Error::NotAllowed {
            rule: "the store is open on another connection: close it first".into(),
        });
    }
    Ok(())
}

impl Store {
    /// Re-encrypts the store under `new` (a new key, or none), keeping every record, index row,
    /// outbox entry and sync state; the store stays open, under the new key.
    ///
    /// The data is exported to a new file beside the store, which is synced and then renamed
    /// over the store's file: a crash leaves either the old file, whole and under the old key,
    /// or the new one, whole and under the new key. The caller must therefore keep both keys
    /// until this returns (the vault does, see `Vault::rotate_key`). No other connection may
    /// have the file open.
    pub fn rekey(&mut self, new: Encryption) -> Result<()> {
        self.rekey_until(new, None)
    }

    pub(crate) fn rekey_until(&mut self, new: Encryption, stop: Option<RekeyStop>) -> Result<()> {
        let db = self.ctx.path.clone();
        let temp = rekey_files(&db)[0].clone();
        remove_rekey_leftovers(&db)?;
        let exported = export_to(&self.conn, &temp, &new)
            .and_then(|()| Ok(std::fs::File::open(&temp)?.sync_all()?));
        if let Err(e) = exported {
            let _ = remove_rekey_leftovers(&db);
            return Err(e);
        }
        if stop == Some(RekeyStop::AfterExport) {
            return Ok(());
        }
        // The old file's WAL and shared-memory index are found by name: left beside the new
        // file, SQLite would replay the old file's pages into it. So the WAL is emptied into the
        // old file and the connection closed before anything is renamed.
        if let Err(e) = checkpoint(&self.conn) {
            let _ = remove_rekey_leftovers(&db);
            return Err(e);
        }
        let old = std::mem::replace(&mut self.conn, Connection::open_in_memory()?);
        if let Err((conn, e)) = old.close() {
            self.conn = conn;
            let _ = remove_rekey_leftovers(&db);
            return Err(e.into());
        }
        let swapped = (|| -> Result<()> {
            remove_if_exists(&sidecar(&db, "-wal"))?;
            remove_if_exists(&sidecar(&db, "-shm"))?;
            std::fs::rename(&temp, &db)?;
            sync_dir(parent_dir(&db))?;
            Ok(())
        })();
        if let Err(e) = swapped {
            // Whichever file holds the store's name now, reopen it, so the store stays usable.
            if db.is_file()
                && let Ok(conn) = schema::open_connection(&db, &self.ctx.encryption)
                    .or_else(|_| schema::open_connection(&db, &new))
            {
                self.conn = conn;
            }
            let _ = remove_rekey_leftovers(&db);
            return Err(e);
        }
        if stop == Some(RekeyStop::AfterRename) {
            return Ok(());
        }
        self.conn = schema::open_connection(&db, &new)?;
        self.ctx.encryption = new;
        Ok(())
    }

    /// Closes the store and deletes its files (database, WAL, shared-memory index, journal).
    ///
    /// On flash storage a deleted file's blocks may survive until the controller reuses them,
    /// and overwriting does not reliably reach them: what makes the bytes unreadable is
    /// destroying the key. A caller holding the key elsewhere destroys it first (the vault
    /// deletes the profile's key file before calling this).
    pub fn destroy(self) -> Result<()> {
        let Store { conn, ctx } = self;
        // Nothing needs to reach the file any more: closing without a checkpoint is enough.
        drop(conn);
        remove_store_files(&ctx.path)
    }
}

//! The hub's key: one random 256-bit key that encrypts everything the hub keeps at rest (the
//! embedded store and device registry through SQLCipher, PostgreSQL's record bytes through
//! `postgres::seal`).
//!
//! Where it comes from, in this order: `--unencrypted` (no key: only when asked for), the 64
//! hex digits of `VIGIE_HUB_KEY`, or a key file (`--key-file`, by default `<data>-key/hub.key`
//! beside the data directory, never inside it, so that a copy of the data directory alone reads
//! nothing). A hub that does not exist yet gets a new random key, written to the key file
//! (0600, in a directory made 0700). A hub that exists and whose key cannot be found is an
//! error: it is never opened as an empty new hub.

use rand::RngCore;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A key file holds this, a space, and the key's 64 hex digits (a newline after them).
const KEY_FILE_TAG: &str = "vigie-hub-key-v1";

/// The hub's 256-bit key. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct HubKey(pub [u8; 32]);

impl std::fmt::Debug for HubKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HubKey(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// `hub` names where the hub is: its data directory, or its PostgreSQL database.
    #[error(
        "the hub in {hub} exists but its key was not found: no key file at {} and no \
         VIGIE_HUB_KEY (give its key file with --key-file, the journal of its erasures and \
         revocations beside it: a key given by VIGIE_HUB_KEY keeps none, and a hub restored \
         from a backup without it brings erased records back; without the key the hub cannot \
         be read)",
        file.display()
    )]
    Missing { hub: String, file: PathBuf },
    /// The key does not open the hub's file: SQLCipher cannot tell a wrong key from a damaged
    /// first page, so both are said.
    #[error(
        "wrong key for this hub, or its file is damaged (the key given does not open it): check \
         the key; if it is the right one, restore the hub's files from a backup"
    )]
    Wrong,
    /// The key is not the one the hub's PostgreSQL database was sealed with (its key check).
    #[error(
        "wrong key for this hub: the database was sealed with another key (check the key file \
         or VIGIE_HUB_KEY, and the database URL: another hub's database?)"
    )]
    WrongForDatabase,
    /// The key does not open the file as it reads with its write-ahead log: the key is wrong,
    /// or the log is another moment's (a backup restored beside a crashed hub's log).
    #[error(
        "wrong key for this hub, or {} belongs to another copy of {} (a backup restored \
         beside the log of the hub that stopped?): if the key is right, move every -wal and \
         -shm file out of the data directory, copy the backup's files in again (opening them \
         beside another copy's log may have changed them), and try again",
        wal.display(),
        file.display()
    )]
    WrongOrForeignLog { file: PathBuf, wal: PathBuf },
    #[error(
        "this hub is not encrypted: open it with --unencrypted (and no key), or keep the key \
         away from it"
    )]
    HubUnencrypted,
    #[error("this hub is encrypted: give its key (VIGIE_HUB_KEY or --key-file), not --unencrypted")]
    HubEncrypted,
    /// The key given by `VIGIE_HUB_KEY` (or `--key-hex`) is not one.
    #[error(
        "the key given by VIGIE_HUB_KEY (or --key-hex) is not a hub key: a hub key is 64 hex digits"
    )]
    BadHex,
    #[error("the key file {0} is not a Vigie key file ({KEY_FILE_TAG} and 64 hex digits)")]
    BadFile(PathBuf),
    #[error(
        "the key file {file} may be read by other users (mode {mode:o}): make it owner-only \
         (chmod 600)"
    )]
    Exposed { file: PathBuf, mode: u32 },
    #[error(
        "the key directory {dir} may be entered by other users (mode {mode:o}): make it \
         owner-only (chmod 700)"
    )]
    ExposedDirectory { dir: PathBuf, mode: u32 },
    #[error("--unencrypted cannot be combined with a key (VIGIE_HUB_KEY or --key-file)")]
    Conflict,
    #[error(
        "two keys given: VIGIE_HUB_KEY (--key-hex) and the key file {}; give one (the key \
         file keeps the journal of the hub's erasures and revocations beside it: prefer it)",
        file.display()
    )]
    TwoKeys { file: PathBuf },
    #[error(
        "the key file {} is inside the hub's data directory {}: keep the key apart from the \
         data (a copy of the directory would hold what reads it), in a directory of its own",
        file.display(),
        data.display()
    )]
    InsideData { file: PathBuf, data: PathBuf },
    #[error("a PostgreSQL hub is always encrypted: --unencrypted is for the embedded store only")]
    PostgresUnencrypted,
    #[error("cannot read or write the key file {file}: {reason}")]
    Io { file: PathBuf, reason: String },
    #[error(
        "the store {store} exists but its key file {file} was not found: give its key with \
         --key-hex (VIGIE_STORE_KEY), or --unencrypted if it was made unencrypted"
    )]
    StoreKeyMissing { store: PathBuf, file: PathBuf },
}

/// How the operator gives the key (the command line's `--key-file`, `--unencrypted` and
/// `VIGIE_HUB_KEY`). The default finds or makes the key file beside the data directory.
#[derive(Clone, Default)]
pub struct KeyOptions {
    /// 64 hex digits (`VIGIE_HUB_KEY`).
    pub key_hex: Option<String>,
    pub key_file: Option<PathBuf>,
    pub unencrypted: bool,
}

impl std::fmt::Debug for KeyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyOptions")
            .field("key_hex", &self.key_hex.as_ref().map(|_| ".."))
            .field("key_file", &self.key_file)
            .field("unencrypted", &self.unencrypted)
            .finish()
    }
}

/// The key file's name by default, in `<data>-key/`.
pub const KEY_FILE_NAME: &str = "hub.key";

/// Where a hub whose data directory is `data` keeps its key unless told otherwise:
/// `<data>-key/hub.key`, beside the directory, however the directory is spelt: `vigie-data/`
/// (as shell completion writes it), `./vigie-data/.` and `vigie-data` all name
/// `vigie-data-key/hub.key`, never a directory inside the data.
pub fn default_key_file(data: &Path) -> PathBuf {
    // The path's components drop trailing slashes and `.`; a path that ends without a name
    // (`.`, `..`, `huby/..`) names the directory the system resolves it to.
    let lexical: PathBuf = data.components().collect();
    let named = match lexical.components().next_back() {
        Some(std::path::Component::Normal(_)) => lexical,
        _ => std::fs::canonicalize(data)
            .or_else(|_| std::path::absolute(data))
            .unwrap_or(lexical),
    };
    let mut dir = match named.file_name() {
        Some(name) => name.to_owned(),
        // The root directory itself.
        None => "vigie-data".into(),
    };
    dir.push("-key");
    named
        .parent()
        .map(|parent| parent.join(&dir))
        .unwrap_or_else(|| PathBuf::from(&dir))
        .join(KEY_FILE_NAME)
}

impl KeyOptions {
    /// Options that give this key.
    pub fn with_key(key: &HubKey) -> KeyOptions {
        KeyOptions {
            key_hex: Some(hex(&key.0)),
            ..KeyOptions::default()
        }
    }

    /// The key of the hub whose data directory is `data` (`None`: unencrypted, as asked). When
    /// `exists` is false (a new hub) and no key is given, a new key is made and written to the
    /// key file.
    pub fn resolve(&self, data: &Path, exists: bool) -> Result<Option<HubKey>, KeyError> {
        self.resolve_for(&data.display().to_string(), data, exists)
    }

    /// `resolve` for the hub that `hub` names in errors (a PostgreSQL database, whose default
    /// key file is found beside `data` all the same).
    pub fn resolve_for(
        &self,
        hub: &str,
        data: &Path,
        exists: bool,
    ) -> Result<Option<HubKey>, KeyError> {
        if self.unencrypted {
            if self.key_hex.is_some() || self.key_file.is_some() {
                return Err(KeyError::Conflict);
            }
            return Ok(None);
        }
        if let Some(text) = &self.key_hex {
            // Two keys given: which one the operator meant is not for the hub to guess (and
            // the key file's journal would be silently left behind). The hub's default key
            // file counts, once it is there.
            let default = default_key_file(data);
            if self.key_file.is_some() || default.exists() {
                return Err(KeyError::TwoKeys {
                    file: self.key_file.clone().unwrap_or(default),
                });
            }
            return parse_hex(text.trim()).map(Some);
        }
        let (file, holder) = match &self.key_file {
            Some(file) => (file.clone(), KeyHolder::NamedHubFile),
            None => (default_key_file(data), KeyHolder::Hub),
        };
        // A key inside the data directory goes with every copy of it: a backup would hold
        // what reads it, and a restore over the directory would take the journal beside it.
        if resolved(&file).starts_with(resolved(data)) {
            return Err(KeyError::InsideData {
                file,
                data: data.to_path_buf(),
            });
        }
        match read_key_file(&file, holder)? {
            Some(key) => Ok(Some(key)),
            None if exists => Err(KeyError::Missing {
                hub: hub.to_string(),
                file,
            }),
            // Said once, where the person who set the hub up reads it: without this file the
            // hub can never be read again.
            None => new_key_in(
                &file,
                holder,
                "a new hub",
                "back up the directory that holds it, apart from the data: the key, and the \
                 journal of the hub's erasures and revocations beside it",
            )
            .map(Some),
        }
    }
}

/// `path` with symbolic links and `..` resolved as far as it exists, absolute.
pub fn resolved(path: &Path) -> PathBuf {
    if let Ok(real) = std::fs::canonicalize(path) {
        return real;
    }
    // `missing/..`: the directory that holds `missing` (whatever `missing` would have been).
    if path.components().next_back() == Some(std::path::Component::ParentDir)
        && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
    {
        let above = resolved(parent);
        return above.parent().map(PathBuf::from).unwrap_or(above);
    }
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) if !parent.as_os_str().is_empty() => resolved(parent).join(name),
        _ => std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
    }
}

/// Where `vigie sync` keeps the key of a device's store at `store`: `<store>.key`.
pub fn store_key_file(store: &Path) -> PathBuf {
    let mut file = store.as_os_str().to_owned();
    file.push(".key");
    PathBuf::from(file)
}

/// The key of the device store `vigie sync` keeps at `store`, from its key file (the hub's
/// format, owner-only); a store that does not exist yet gets a new random key, written there.
pub fn device_store_key(store: &Path) -> Result<HubKey, KeyError> {
    let file = store_key_file(store);
    if let Some(key) = read_key_file(&file, KeyHolder::DeviceStore)? {
        return Ok(key);
    }
    if store.metadata().is_ok_and(|m| m.len() > 0) {
        return Err(KeyError::StoreKeyMissing {
            store: store.to_path_buf(),
            file,
        });
    }
    new_key_in(
        &file,
        KeyHolder::DeviceStore,
        "a new store",
        "without it the store cannot be read",
    )
}

/// Whose key a key file holds, and where. The hub's default key file lives in a directory of
/// its own, `<data>-key`, owner-only as the file is (README, "The hub's key"); a key file the
/// operator names (`--key-file`) is in a directory they chose, and a device store's key file
/// lies beside the store: only the file's own mode is checked there.
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyHolder {
    Hub,
    NamedHubFile,
    DeviceStore,
}

/// A new random key, written to `file` (`write_key_file`), and where it is said on stderr.
fn new_key_in(
    file: &Path,
    holder: KeyHolder,
    what: &str,
    advice: &str,
) -> Result<HubKey, KeyError> {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let key = HubKey(key);
    // Another process made the key meanwhile (a hub's first commands run at once): its key is
    // the one in force, used here too.
    if let Some(theirs) = write_key_file(file, holder, &key)? {
        return Ok(theirs);
    }
    eprintln!("vigie: {what}: its key is in {} ({advice})", file.display());
    Ok(key)
}

/// Lowercase hex, as the key file, the database's incarnation and the machines' marks write.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex(text: &str) -> Result<HubKey, KeyError> {
    if text.len() != 64 || !text.is_ascii() {
        return Err(KeyError::BadHex);
    }
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| KeyError::BadHex)?;
    }
    Ok(HubKey(key))
}

fn io_error(file: &Path) -> impl Fn(std::io::Error) -> KeyError + '_ {
    move |e| KeyError::Io {
        file: file.to_path_buf(),
        reason: e.to_string(),
    }
}

/// The directory that holds `file`.
fn key_directory(file: &Path) -> PathBuf {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The permission bits of `path` (0 where there are none to read).
fn mode_of(path: &Path) -> Result<u32, KeyError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Ok(std::fs::metadata(path)
            .map_err(io_error(path))?
            .permissions()
            .mode()
            & 0o777)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(0)
    }
}

/// A hub key's directory that others may enter or list is refused, as its file is: the key
/// would no longer be the owner's alone (README: the file 0600, its directory 0700).
fn check_key_directory(dir: &Path) -> Result<(), KeyError> {
    let mode = mode_of(dir)?;
    if mode & 0o077 != 0 {
        return Err(KeyError::ExposedDirectory {
            dir: dir.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// The key in `file`, `None` if there is no such file. A file others may read is refused, as
/// ssh refuses such a private key: the key would no longer be the owner's alone; so is the
/// hub's default key directory if others may enter it.
fn read_key_file(file: &Path, holder: KeyHolder) -> Result<Option<HubKey>, KeyError> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(file)(e)),
    };
    let mode = mode_of(file)?;
    if mode & 0o077 != 0 {
        return Err(KeyError::Exposed {
            file: file.to_path_buf(),
            mode,
        });
    }
    if holder == KeyHolder::Hub {
        check_key_directory(&key_directory(file))?;
    }
    let bad = || KeyError::BadFile(file.to_path_buf());
    let (tag, digits) = text.trim().split_once(' ').ok_or_else(bad)?;
    if tag != KEY_FILE_TAG {
        return Err(bad());
    }
    parse_hex(digits.trim()).map(Some).map_err(|_| bad())
}

/// Writes a new key file: its directory made (0700) if missing, the file created owner-only
/// (0600) under a temporary name of this write's own, synced, then linked into place, so that
/// a crash leaves either no key file or a whole one, and an existing key file is never
/// replaced: the key another process put there meanwhile is returned instead. (Two processes
/// wrote one temporary file: the key linked into place was one, the hub sealed with the
/// other, and the hub never opened again.) The hub's default key directory is not written
/// into if others may enter it (it would be refused when read).
fn write_key_file(
    file: &Path,
    holder: KeyHolder,
    key: &HubKey,
) -> Result<Option<HubKey>, KeyError> {
    let dir = key_directory(file);
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&dir).map_err(io_error(&dir))?;
    if holder == KeyHolder::Hub {
        check_key_directory(&dir)?;
    }
    let mut own = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut own);
    let temporary = file.with_extension(format!("key-new-{}", hex(&own)));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut out = options.open(&temporary).map_err(io_error(&temporary))?;
    writeln!(out, "{KEY_FILE_TAG} {}", hex(&key.0)).map_err(io_error(&temporary))?;
    out.sync_all().map_err(io_error(&temporary))?;
    drop(out);
    // A hard link fails if the file exists: a key file that appeared meanwhile is kept.
    let linked = std::fs::hard_link(&temporary, file);
    std::fs::remove_file(&temporary).map_err(io_error(&temporary))?;
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return read_key_file(file, holder)?
                .map(Some)
                .ok_or_else(|| io_error(file)(e));
        }
        Err(e) => return Err(io_error(file)(e)),
    }
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(&dir))?;
    Ok(None)
}

/// What the first bytes of a SQLite file say: a plain SQLite file starts with this header,
/// a SQLCipher file with random bytes.
pub(crate) fn is_plain_sqlite(path: &Path) -> bool {
    let mut header = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header))
        .is_ok()
        && &header == b"SQLite format 3\0"
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hub's first commands run at once (`vigie serve` and `vigie reference publish` from a
    /// set-up script), each making the key: every one ends with the key the file holds. Two
    /// wrote one temporary file; the key linked into place was one, the hub sealed with the
    /// other, and the hub never opened again.
    #[test]
    fn keys_made_at_once_are_the_one_the_file_holds() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("keys").join("hub.key");
            let made: Vec<HubKey> = std::thread::scope(|scope| {
                let runs: Vec<_> = (0..4)
                    .map(|_| {
                        scope.spawn(|| {
                            new_key_in(&file, KeyHolder::NamedHubFile, "a new hub", "test").unwrap()
                        })
                    })
                    .collect();
                runs.into_iter().map(|run| run.join().unwrap()).collect()
            });
            let held = read_key_file(&file, KeyHolder::NamedHubFile)
                .unwrap()
                .unwrap();
            assert!(made.iter().all(|key| key.0 == held.0));
            let left: Vec<_> = std::fs::read_dir(file.parent().unwrap())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(left, ["hub.key"], "no temporary file left");
        }
    }

    #[test]
    fn a_new_hub_gets_an_owner_only_key_file_and_finds_it_again() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let options = KeyOptions::default();
        let made = options.resolve(&data, false).unwrap().unwrap();
        let file = default_key_file(&data);
        assert!(
            !file.starts_with(&data),
            "the key is kept outside the data directory"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&file), 0o600);
            assert_eq!(mode(file.parent().unwrap()), 0o700);
        }
        assert_eq!(options.resolve(&data, true).unwrap(), Some(made));
    }

    #[test]
    fn the_key_lands_beside_the_data_directory_however_it_is_spelt() {
        let beside = PathBuf::from("vigie-data-key/hub.key");
        for spelt in [
            "vigie-data",
            "vigie-data/",
            "vigie-data//",
            "./vigie-data/.",
        ] {
            let file = default_key_file(Path::new(spelt));
            // `./x` and `x` are one place.
            let place: PathBuf = file
                .components()
                .filter(|c| *c != std::path::Component::CurDir)
                .collect();
            assert_eq!(place, beside, "{spelt}");
        }
        assert_eq!(
            default_key_file(Path::new("/srv/huby/.")),
            PathBuf::from("/srv/huby-key/hub.key")
        );
        // A directory named without its name: the one the system resolves it to.
        let dir = tempfile::tempdir().unwrap();
        let huby = dir.path().join("huby");
        std::fs::create_dir(&huby).unwrap();
        let canonical = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(
            default_key_file(&huby.join("..")),
            canonical.parent().unwrap().join(format!(
                "{}-key/hub.key",
                canonical.file_name().unwrap().to_str().unwrap()
            ))
        );
        // Made once through a path with a trailing slash, found again through the plain one.
        let made = KeyOptions::default()
            .resolve(&dir.path().join("data/"), false)
            .unwrap();
        assert!(dir.path().join("data-key").join("hub.key").exists());
        assert_eq!(
            KeyOptions::default()
                .resolve(&dir.path().join("data"), true)
                .unwrap(),
            made
        );
    }

    #[test]
    fn a_hub_key_directory_others_may_enter_is_refused_as_an_exposed_file_is() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let made = KeyOptions::default().resolve(&data, false).unwrap();
        let key_dir = dir.path().join("data-key");
        std::fs::set_permissions(&key_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = KeyOptions::default().resolve(&data, true).unwrap_err();
        assert!(matches!(err, KeyError::ExposedDirectory { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&key_dir.display().to_string()) && text.contains("chmod 700"),
            "{text}"
        );
        // Nor is a new key written into such a directory.
        let other = dir.path().join("other");
        std::fs::create_dir(dir.path().join("other-key")).unwrap();
        std::fs::set_permissions(
            dir.path().join("other-key"),
            std::fs::Permissions::from_mode(0o750),
        )
        .unwrap();
        assert!(matches!(
            KeyOptions::default().resolve(&other, false),
            Err(KeyError::ExposedDirectory { .. })
        ));
        assert!(!dir.path().join("other-key").join("hub.key").exists());
        // Owner-only again: found.
        std::fs::set_permissions(&key_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(KeyOptions::default().resolve(&data, true).unwrap(), made);
        // A device store's key file lies beside the store, wherever that is.
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
        let store = shared.join("phone.db");
        let key = device_store_key(&store).unwrap();
        std::fs::write(&store, b"x").unwrap();
        assert_eq!(device_store_key(&store).unwrap(), key);
    }

    #[test]
    fn an_existing_hub_without_its_key_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let err = KeyOptions::default().resolve(&data, true).unwrap_err();
        assert!(matches!(err, KeyError::Missing { .. }), "{err}");
        assert!(!default_key_file(&data).exists());
    }

    #[test]
    fn bad_keys_and_exposed_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        // The key file beside the hub's data directory, never inside it.
        let data = dir.path().join("hub");
        let given = |hex: &str| KeyOptions {
            key_hex: Some(hex.into()),
            ..KeyOptions::default()
        };
        let err = given("abc").resolve(&data, true).unwrap_err();
        assert!(matches!(err, KeyError::BadHex));
        assert!(err.to_string().contains("VIGIE_HUB_KEY"), "{err}");
        assert!(matches!(
            given(&"zz".repeat(32)).resolve(&data, true),
            Err(KeyError::BadHex)
        ));
        let both = KeyOptions {
            unencrypted: true,
            ..given(&"00".repeat(32))
        };
        assert!(matches!(both.resolve(&data, true), Err(KeyError::Conflict)));
        let file = dir.path().join("k");
        std::fs::write(&file, format!("{KEY_FILE_TAG} {}\n", "11".repeat(32))).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            let named = KeyOptions {
                key_file: Some(file.clone()),
                ..KeyOptions::default()
            };
            assert!(matches!(
                named.resolve(&data, true),
                Err(KeyError::Exposed { .. })
            ));
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
            assert_eq!(
                named.resolve(&data, true).unwrap(),
                Some(HubKey([0x11; 32]))
            );
            std::fs::write(&file, "not a key\n").unwrap();
            assert!(matches!(
                named.resolve(&data, true),
                Err(KeyError::BadFile(_))
            ));
            let inside = KeyOptions {
                key_file: Some(data.join("hub.key")),
                ..KeyOptions::default()
            };
            assert!(matches!(
                inside.resolve(&data, false),
                Err(KeyError::InsideData { .. })
            ));
            assert!(!data.exists());
        }
    }
}

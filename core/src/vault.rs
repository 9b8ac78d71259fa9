//! The profiles of the people who use one phone: each user's store, under its own key, and
//! the ways that key is unlocked.
//!
//! ```text
//! <dir>/users/<user id>/store.db    the user's store (SQLCipher), with its -wal and -shm
//! <dir>/users/<user id>/key.json    the user's keys, all of them wrapped
//! ```
//!
//! Keys, per profile:
//! - the **data key**: 32 random bytes, the store's SQLCipher key. Kept only wrapped by the
//!   profile key, as `current` and, while a rotation is under way, `pending`.
//! - the **profile key**: 32 random bytes, wrapped by each way of unlocking: by a key derived
//!   from the user's PIN with Argon2id (salt and cost kept beside it), and optionally by a key
//!   from the platform's keystore (biometrics). Two levels let the data key be rotated with
//!   one credential, and the PIN be changed without touching the keystore's wrap.
//!
//! Every wrap is XChaCha20-Poly1305 with the user id and the wrap's purpose as associated
//! data, so no wrap can be moved to another profile or slot. A PIN is never a key itself: it
//! only ever unlocks the profile key through the slow derivation, and every attempt counts.
//!
//! Wrong PINs are counted in the key file *before* the derivation runs, so killing the app
//! during an attempt does not spare it; a correct PIN (or keystore unlock) resets the count;
//! the limit wipes the profile. Past the first few wrong PINs each further one waits, longer
//! every time (`VaultConfig::pin_delay_after`): someone handed the phone, or a child playing
//! with it, cannot wipe a monitor's unsynced work in a minute. Profiles never touch each other's files: switching user is
//! closing one `Store` and unlocking another, and nothing of another user is ever deleted by
//! it.
//!
//! The app should exclude the vault's directory from backups: the key file is only as safe as
//! the PIN's derivation once it leaves the phone. The count of wrong PINs lives in a file, so
//! someone able to write the app's files could restore an older copy, and whoever copies the
//! key file can try PINs against it at the derivation's cost, with no count at all; the PIN's
//! wrap stays beside a keystore unlock. Only a longer PIN resists that (README says so).

use crate::domain::reference::ReferenceData;
use crate::error::{Error, IdentityError, Result, ValidationError};
use crate::store::files::{
    RekeyStop, parent_dir, remove_if_exists, remove_rekey_leftovers, remove_store_files, sync_dir,
};
use crate::store::{Encryption, Store, StoreConfig};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use uuid::Uuid;
use zeroize::Zeroizing;

type SecretKey = Zeroizing<[u8; 32]>;

const KEY_FILE: &str = crate::store::files::PROFILE_KEY_FILE;
const STORE_FILE: &str = "store.db";
const KEY_FILE_FORMAT: u32 = 1;
/// No key file comes near this; a bigger one is not ours.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;
const SALT_BYTES: usize = 16;
const NONCE_BYTES: usize = 24;
const MAX_PIN_CHARS: usize = 128;

/// Argon2id's cost. The defaults (19 MiB, 2 passes, 1 lane) are OWASP's minimum for Argon2id
/// and take a fraction of a second on a cheap phone; they are stored with each wrap, so raising
/// them later re-wraps each profile at its next PIN unlock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for KdfParams {
    fn default() -> KdfParams {
        KdfParams {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl KdfParams {
    fn argon2(&self) -> Result<argon2::Params, ValidationError> {
        // Each bound named on the field an app sets (the bindings' names).
        let between = |field: &str, value: u32, max: u32| {
            if (1..=max).contains(&value) {
                Ok(())
            } else {
                Err(ValidationError::new(
                    field,
                    format!("must be between 1 and {max}"),
                ))
            }
        };
        between("kdf_iterations", self.iterations, MAX_KDF_ITERATIONS)?;
        between("kdf_parallelism", self.parallelism, MAX_KDF_PARALLELISM)?;
        // Argon2 needs 8 KiB per lane.
        let least = 8 * self.parallelism;
        if self.memory_kib < least {
            return Err(ValidationError::new(
                "kdf_memory_kib",
                format!("must be at least {least}"),
            ));
        }
        if self.memory_kib > MAX_KDF_MEMORY_KIB {
            return Err(ValidationError::new(
                "kdf_memory_kib",
                format!("must be at most {MAX_KDF_MEMORY_KIB}"),
            ));
        }
        argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
            .map_err(|_| ValidationError::new("kdf", "not valid Argon2id parameters"))
    }
}

/// Bounds of `KdfParams` that keep a damaged or hostile key file from asking for gigabytes or
/// hours.
const MAX_KDF_MEMORY_KIB: u32 = 1024 * 1024;
const MAX_KDF_ITERATIONS: u32 = 64;
const MAX_KDF_PARALLELISM: u32 = 16;

/// How a vault treats its profiles.
#[derive(Debug, Clone)]
pub struct VaultConfig {
    /// The cost of new PIN wraps (new profiles, PIN changes, and re-wraps on unlock when a
    /// profile's stored cost differs).
    pub kdf: KdfParams,
    /// Wrong PINs in a row after which the profile is wiped (at least 1).
    pub max_failed_pins: u32,
    /// Shortest PIN accepted (characters).
    pub min_pin_chars: usize,
    /// Wrong PINs in a row that may follow one another at once. After them, the next attempt
    /// waits `pin_delay_seconds`, and each further wrong PIN doubles the wait, up to
    /// `MAX_PIN_DELAY_SECONDS`; an attempt made sooner is `Error::PinLocked`, not counted.
    pub pin_delay_after: u32,
    /// The first wait (0: none).
    pub pin_delay_seconds: u64,
    /// The reference data every store is opened with.
    pub reference: ReferenceData,
}

/// The longest wait between two PIN attempts.
pub const MAX_PIN_DELAY_SECONDS: u64 = 15 * 60;

impl Default for VaultConfig {
    fn default() -> VaultConfig {
        VaultConfig {
            kdf: KdfParams::default(),
            max_failed_pins: 10,
            min_pin_chars: 6,
            // With ten attempts: three at once, then 30 s, 1, 2, 4, 8 and 15 minutes, and 15
            // again before the tenth, about three quarters of an hour in all.
            pin_delay_after: 3,
            pin_delay_seconds: 30,
            reference: ReferenceData::builtin(),
        }
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// What unlocks a profile.
#[derive(Clone, Copy)]
pub enum Credential<'a> {
    Pin(&'a str),
    /// The 32 bytes the app's keystore (or biometric prompt) releases for this profile.
    Keystore(&'a [u8; 32]),
}

impl std::fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Pin(_) => f.write_str("Credential::Pin(..)"),
            Credential::Keystore(_) => f.write_str("Credential::Keystore(..)"),
        }
    }
}

/// Where `Vault::rotate_key_interrupted` stops, leaving the files as a crash there would.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationCrash {
    /// The new data key is in the key file as pending; nothing else done.
    AfterPendingKey,
    /// The store is exported under the new key beside the old file.
    AfterExport,
    /// The new file has replaced the old one; the key file still names the old key current.
    AfterRename,
}

// ---------------------------------------------------------------------------------------------
// The key file

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::store::schema::hex(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() % 2 != 0 {
            return Err(D::Error::custom("odd-length hex"));
        }
        (0..text.len())
            .step_by(2)
            .map(|i| {
                text.get(i..i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                    .ok_or_else(|| D::Error::custom("not hex"))
            })
            .collect()
    }
}

/// A 32-byte key encrypted under another key.
#[derive(Clone, Serialize, Deserialize)]
struct Wrapped {
    #[serde(with = "hex_bytes")]
    nonce: Vec<u8>,
    #[serde(with = "hex_bytes")]
    ciphertext: Vec<u8>,
}

#[derive(Clone, Serialize, Deserialize)]
struct PinWrap {
    kdf: KdfParams,
    #[serde(with = "hex_bytes")]
    salt: Vec<u8>,
    profile_key: Wrapped,
}

#[derive(Clone, Serialize, Deserialize)]
struct KeyFile {
    format: u32,
    user: Uuid,
    /// Wrong PINs in a row, counting the attempt under way.
    failed_pins: u32,
    /// When the last of them was made (milliseconds since the epoch, the phone's clock).
    #[serde(default)]
    last_failed_pin_ms: Option<i64>,
    pin: PinWrap,
    keystore: Option<Wrapped>,
    data_key: Wrapped,
    /// A rotation's new data key, until its file has replaced the old one.
    pending_data_key: Option<Wrapped>,
    /// The profile's device (its enrolment's), so that the hub's revocation of it, heard
    /// through another profile's sync, finds it (`Vault::revoked_profiles`). Written at the
    /// next unlock of a profile made before it was kept.
    #[serde(default)]
    device: Option<Uuid>,
}

/// What a wrap protects; part of its associated data.
#[derive(Clone, Copy)]
enum Slot {
    PinWrap,
    KeystoreWrap,
    DataKey,
}

fn associated_data(slot: Slot, user: Uuid) -> Vec<u8> {
    let purpose: &[u8] = match slot {
        Slot::PinWrap => b"vigie-vault/1/pin/",
        Slot::KeystoreWrap => b"vigie-vault/1/keystore/",
        Slot::DataKey => b"vigie-vault/1/data/",
    };
    [purpose, user.as_bytes()].concat()
}

fn random_key() -> SecretKey {
    let mut key = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(&mut *key);
    key
}

fn wrap(kek: &[u8; 32], slot: Slot, user: Uuid, key: &[u8; 32]) -> Wrapped {
    let mut nonce = [0u8; NONCE_BYTES];
    OsRng.fill_bytes(&mut nonce);
    let aad = associated_data(slot, user);
    let ciphertext = XChaCha20Poly1305::new(kek.into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: key,
                aad: &aad,
            },
        )
        .expect("encrypting 32 bytes in memory");
    Wrapped {
        nonce: nonce.to_vec(),
        ciphertext,
    }
}

/// The key inside a wrap, or `None` when `kek` is not the key it was wrapped with.
fn unwrap(kek: &[u8; 32], slot: Slot, user: Uuid, wrapped: &Wrapped) -> Result<Option<SecretKey>> {
    if wrapped.nonce.len() != NONCE_BYTES || wrapped.ciphertext.len() != 32 + 16 {
        return Err(damaged(user, "a wrapped key has the wrong length"));
    }
    let aad = associated_data(slot, user);
    let Ok(plain) = XChaCha20Poly1305::new(kek.into()).decrypt(
        XNonce::from_slice(&wrapped.nonce),
        Payload {
            msg: &wrapped.ciphertext,
            aad: &aad,
        },
    ) else {
        return Ok(None);
    };
    let plain = Zeroizing::new(plain);
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&plain);
    Ok(Some(key))
}

fn pin_key(pin: &str, salt: &[u8], kdf: &KdfParams) -> Result<SecretKey> {
    let params = kdf.argon2()?;
    let mut out = Zeroizing::new([0u8; 32]);
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(pin.as_bytes(), salt, &mut *out)
        .map_err(|_| ValidationError::new("kdf", "key derivation failed"))?;
    Ok(out)
}

fn pin_wrap(pin: &str, profile_key: &[u8; 32], user: Uuid, kdf: KdfParams) -> Result<PinWrap> {
    let mut salt = vec![0u8; SALT_BYTES];
    OsRng.fill_bytes(&mut salt);
    let kek = pin_key(pin, &salt, &kdf)?;
    Ok(PinWrap {
        kdf,
        profile_key: wrap(&kek, Slot::PinWrap, user, profile_key),
        salt,
    })
}

fn damaged(user: Uuid, reason: &str) -> Error {
    Error::DamagedProfile {
        user,
        reason: reason.into(),
    }
}

/// A PIN must be long enough and not one of the first guesses (one repeated character, a run
/// of consecutive digits).
fn check_pin(pin: &str, min_chars: usize) -> Result<(), ValidationError> {
    let chars: Vec<char> = pin.chars().collect();
    if chars.len() < min_chars {
        return Err(ValidationError::new(
            "pin",
            format!("must be at least {min_chars} characters"),
        ));
    }
    if chars.len() > MAX_PIN_CHARS {
        return Err(ValidationError::new(
            "pin",
            format!("must be at most {MAX_PIN_CHARS} characters"),
        ));
    }
    let same = chars.windows(2).all(|w| w[0] == w[1]);
    let digits: Option<Vec<i32>> = chars
        .iter()
        .map(|c| c.to_digit(10).map(|d| d as i32))
        .collect();
    let run = digits.is_some_and(|d| {
        let step = d[1] - d[0];
        step.abs() == 1 && d.windows(2).all(|w| w[1] - w[0] == step)
    });
    if same || run {
        return Err(ValidationError::new(
            "pin",
            "too easy to guess (one repeated character or consecutive digits)",
        ));
    }
    Ok(())
}

/// Writes a file so that a crash leaves either the old content or the new, never a mix: a
/// synced temporary file renamed over it, then the directory synced.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_dir(path);
    let temp = crate::store::files::sidecar(path, ".tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temp, path)?;
    sync_dir(dir)?;
    Ok(())
}

/// Overwrites a small file with zeros before removing it. Flash storage may keep the old
/// blocks anyway; where it does not, this is what erases the wrapped keys.
fn shred(path: &Path) -> Result<()> {
    match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(mut file) => {
            let len = file.metadata()?.len() as usize;
            file.write_all(&vec![0u8; len])?;
            file.sync_all()?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    remove_if_exists(path)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The vault

/// The lock file a vault holds in its directory while it is open.
const VAULT_LOCK: &str = crate::store::files::VAULT_LOCK_FILE;

/// The profiles on one phone. One `Vault` per directory (a second is refused while the first
/// is open): it serialises its own changes to key files, and knows its own open stores.
pub struct Vault {
    dir: PathBuf,
    config: VaultConfig,
    lock: Mutex<()>,
    /// The directory's lock file, held while the vault is open: a second vault on the same
    /// directory would not know of the first's open stores (a key rotation through one would
    /// lose what the other's stores write).
    _held: std::fs::File,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault").finish_non_exhaustive()
    }
}

impl Vault {
    /// Opens (creating it if needed) the vault in `dir`, with the default configuration.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Vault> {
        Vault::open_with(dir, VaultConfig::default())
    }

    pub fn open_with(dir: impl Into<PathBuf>, config: VaultConfig) -> Result<Vault> {
        config.kdf.argon2()?;
        if config.max_failed_pins == 0 {
            return Err(ValidationError::new("max_failed_pins", "must be at least 1").into());
        }
        if config.min_pin_chars < 4 {
            return Err(ValidationError::new("min_pin_chars", "must be at least 4").into());
        }
        // A minimum above the longest PIN accepted would lock every profile out at its making.
        if config.min_pin_chars > MAX_PIN_CHARS {
            return Err(ValidationError::new(
                "min_pin_chars",
                format!("must be at most {MAX_PIN_CHARS} characters"),
            )
            .into());
        }
        let dir = dir.into();
        // An empty path is the process's working directory: profiles would land wherever the
        // app was started from.
        let text = dir.as_os_str().to_string_lossy();
        if text.trim().is_empty() || text.contains('\0') {
            return Err(ValidationError::new(
                "dir",
                "must be the path of a directory (not empty, no NUL character)",
            )
            .into());
        }
        // A file, a path through one, a device or a link to nothing is no place for profiles:
        // said on the field rather than as the system's "File exists".
        std::fs::create_dir_all(&dir).map_err(|e| Error::unusable_directory("dir", e))?;
        if !dir.is_dir() {
            return Err(Error::unusable_directory(
                "dir",
                std::io::ErrorKind::NotADirectory.into(),
            ));
        }
        let held = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(VAULT_LOCK))
            .map_err(|e| Error::unusable_directory("dir", e))?;
        match held.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::NotAllowed {
                    rule: "another vault is open on this directory: open one per directory, \
                           and share it"
                        .into(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
        let vault = Vault {
            dir,
            config,
            lock: Mutex::new(()),
            _held: held,
        };
        std::fs::create_dir_all(vault.users_dir())?;
        Ok(vault)
    }

    pub fn config(&self) -> &VaultConfig {
        &self.config
    }

    /// The directory holding every profile (to exclude from backups).
    pub fn users_dir(&self) -> PathBuf {
        self.dir.join("users")
    }

    /// The directory of one user's profile.
    pub fn profile_dir(&self, user: Uuid) -> PathBuf {
        self.users_dir().join(user.hyphenated().to_string())
    }

    fn key_path(&self, user: Uuid) -> PathBuf {
        self.profile_dir(user).join(KEY_FILE)
    }

    fn store_path(&self, user: Uuid) -> PathBuf {
        self.profile_dir(user).join(STORE_FILE)
    }

    /// The users with a profile on this phone, in id order.
    pub fn users(&self) -> Result<Vec<Uuid>> {
        let mut users = Vec::new();
        for entry in std::fs::read_dir(self.users_dir())? {
            let name = entry?.file_name();
            if let Some(user) = name.to_str().and_then(|n| Uuid::try_parse(n).ok())
                && name.to_str() == Some(user.hyphenated().to_string().as_str())
                && self.has_user(user)
            {
                users.push(user);
            }
        }
        users.sort();
        Ok(users)
    }

    /// Whether the user has a profile here. A directory without a key file (a creation cut
    /// short) is not one: its store can never be opened.
    pub fn has_user(&self, user: Uuid) -> bool {
        self.key_path(user).is_file()
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read_key_file(&self, user: Uuid) -> Result<KeyFile> {
        let path = self.key_path(user);
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NoProfile { user });
            }
            Err(e) => return Err(e.into()),
        };
        let mut bytes = Vec::new();
        file.take(MAX_KEY_FILE_BYTES + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
            return Err(damaged(user, "the key file is too large"));
        }
        let key_file: KeyFile = serde_json::from_slice(&bytes)
            .map_err(|_| damaged(user, "the key file does not read"))?;
        if key_file.format != KEY_FILE_FORMAT {
            return Err(damaged(user, "the key file's format is not known"));
        }
        if key_file.user != user {
            return Err(damaged(user, "the key file is another user's"));
        }
        Ok(key_file)
    }

    fn write_key_file(&self, key_file: &KeyFile) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(key_file).expect("a key file serialises");
        write_atomically(&self.key_path(key_file.user), &bytes)
    }

    fn store_config(&self, user: Uuid, data_key: &[u8; 32], device: Option<Uuid>) -> StoreConfig {
        let mut config = StoreConfig::new(self.store_path(user), Encryption::Key(*data_key), user);
        config.device = device;
        config.reference = self.config.reference.clone();
        config
    }

    /// Creates the user's profile, protected by `pin`, and opens its new, empty store. `device`
    /// is the device id from the user's enrolment (a random one without).
    pub fn create_user(&self, user: Uuid, device: Option<Uuid>, pin: &str) -> Result<Store> {
        check_pin(pin, self.config.min_pin_chars)?;
        if user.is_nil() {
            return Err(ValidationError::new("user", "must be set").into());
        }
        let _guard = self.guard();
        if self.has_user(user) {
            return Err(Error::ProfileExists { user });
        }
        let dir = self.profile_dir(user);
        // Left by a creation cut short: without a key file nothing in it can be read.
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        sync_dir(&self.users_dir())?;
        let created = (|| {
            let profile_key = random_key();
            let data_key = random_key();
            let store = Store::open(self.store_config(user, &data_key, device))?;
            let key_file = KeyFile {
                format: KEY_FILE_FORMAT,
                user,
                failed_pins: 0,
                last_failed_pin_ms: None,
                pin: pin_wrap(pin, &profile_key, user, self.config.kdf)?,
                keystore: None,
                data_key: wrap(&profile_key, Slot::DataKey, user, &data_key),
                pending_data_key: None,
                device: Some(store.device_id()),
            };
            // The key file is written last: it is what makes the profile exist.
            self.write_key_file(&key_file)?;
            Ok(store)
        })();
        if created.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        created
    }

    /// Opens the user's store with a PIN or a keystore key (see `unlock_with_pin`).
    pub fn unlock(&self, user: Uuid, credential: Credential<'_>) -> Result<Store> {
        let _guard = self.guard();
        let mut key_file = self.read_key_file(user)?;
        let profile_key = self.check_credential(&mut key_file, credential)?;
        let store = self.open_store(&mut key_file, &profile_key)?;
        if key_file.device != Some(store.device_id()) {
            key_file.device = Some(store.device_id());
            self.write_key_file(&key_file)?;
        }
        Ok(store)
    }

    /// Checks the user's PIN or keystore key as `unlock` does (a wrong PIN counted, the last
    /// one wiping the profile), without opening the store: for an app that holds the store
    /// open already and asks its user to prove it is them again (`unlock` there would open a
    /// second store on one file).
    pub fn verify(&self, user: Uuid, credential: Credential<'_>) -> Result<()> {
        let _guard = self.guard();
        let mut key_file = self.read_key_file(user)?;
        self.check_credential(&mut key_file, credential).map(|_| ())
    }

    /// The other users of this phone whose profile's device the hub has revoked, as the
    /// revocation list `known_by` (a store of this vault) last received says: on a tablet
    /// several people share, each profile is a device of its own, and the hub's order to wipe
    /// one reaches the tablet through whichever profile syncs (a monitor who left, her profile
    /// locked by her PIN, would otherwise keep her area's children there). Wipe each
    /// (`wipe_user`). A profile is known by its device: one made by an earlier version is known
    /// from its next unlock (until then nothing tells which of its user's devices it is, and a
    /// guess would wipe an active user's unsent work when another of her devices is revoked).
    pub fn revoked_profiles(&self, known_by: &Store) -> Result<Vec<Uuid>> {
        self.check_owns(known_by)?;
        let revoked = match known_by.trust() {
            Ok(trust) => trust.revoked,
            // Never synced: no list.
            Err(Error::Identity(IdentityError::NoCertificate)) => {
                return Ok(Vec::new());
            }
            Err(e) => return Err(e),
        };
        let _guard = self.guard();
        let mut users = Vec::new();
        for user in self.users()? {
            if user == known_by.user_id() {
                continue;
            }
            let device = self.read_key_file(user).ok().and_then(|k| k.device);
            if device.is_some_and(|device| revoked.contains(&device)) {
                users.push(user);
            }
        }
        Ok(users)
    }

    /// Opens the user's store with their PIN. A wrong PIN is `Error::WrongPin` with the
    /// attempts left; the last one wipes the profile (`Error::ProfileWiped`).
    pub fn unlock_with_pin(&self, user: Uuid, pin: &str) -> Result<Store> {
        self.unlock(user, Credential::Pin(pin))
    }

    /// Opens the user's store with the key the app's keystore released. A wrong key is
    /// `Error::WrongKeyOrNotAStore` (not counted: it cannot be guessed); a profile without
    /// keystore unlock is `Error::NotAllowed`.
    pub fn unlock_with_keystore(&self, user: Uuid, key: &[u8; 32]) -> Result<Store> {
        self.unlock(user, Credential::Keystore(key))
    }

    /// Lets the user unlock with `keystore_key` from now on, besides the PIN (which proves it
    /// is them). Replaces any earlier keystore key.
    pub fn add_keystore_unlock(
        &self,
        user: Uuid,
        pin: &str,
        keystore_key: &[u8; 32],
    ) -> Result<()> {
        let _guard = self.guard();
        let mut key_file = self.read_key_file(user)?;
        let profile_key = self.check_credential(&mut key_file, Credential::Pin(pin))?;
        key_file.keystore = Some(wrap(keystore_key, Slot::KeystoreWrap, user, &profile_key));
        self.write_key_file(&key_file)
    }

    /// Stops keystore unlock for the user (the keystore key was lost or invalidated, or the
    /// user turned biometrics off). Needs no credential: it only takes a way in away.
    pub fn remove_keystore_unlock(&self, user: Uuid) -> Result<()> {
        let _guard = self.guard();
        let mut key_file = self.read_key_file(user)?;
        if key_file.keystore.take().is_some() {
            self.write_key_file(&key_file)?;
        }
        Ok(())
    }

    pub fn has_keystore_unlock(&self, user: Uuid) -> Result<bool> {
        let _guard = self.guard();
        Ok(self.read_key_file(user)?.keystore.is_some())
    }

    /// Seconds before the user's next PIN may be tried (0: now), for the app to show a wait
    /// rather than an attempt refused with `Error::PinLocked`.
    pub fn pin_retry_in_seconds(&self, user: Uuid) -> Result<u64> {
        let _guard = self.guard();
        let key_file = self.read_key_file(user)?;
        Ok(self.pin_wait(&key_file, now_ms()).unwrap_or(0))
    }

    /// Wrong PINs the user may still enter before the profile is wiped.
    pub fn pin_attempts_left(&self, user: Uuid) -> Result<u32> {
        let _guard = self.guard();
        let key_file = self.read_key_file(user)?;
        Ok(self
            .config
            .max_failed_pins
            .saturating_sub(key_file.failed_pins))
    }

    /// Replaces the user's PIN. The old PIN is checked (and counted) as at unlock; the store
    /// and any keystore unlock are untouched.
    pub fn change_pin(&self, user: Uuid, old: &str, new: &str) -> Result<()> {
        check_pin(new, self.config.min_pin_chars)?;
        let _guard = self.guard();
        let mut key_file = self.read_key_file(user)?;
        let profile_key = self.check_credential(&mut key_file, Credential::Pin(old))?;
        key_file.pin = pin_wrap(new, &profile_key, user, self.config.kdf)?;
        self.write_key_file(&key_file)
    }

    /// Re-encrypts the user's open store under a new random data key, keeping all its data;
    /// `store` stays open, under the new key. The credential is checked as at unlock.
    ///
    /// Crash-safe: the new key is added to the key file as pending before the store's file is
    /// replaced, and made current after; unlocking tries the current key, then the pending one,
    /// so whatever point a crash stops at, the file opens with a key the vault holds.
    pub fn rotate_key(&self, store: &mut Store, credential: Credential<'_>) -> Result<()> {
        self.rotate(store, credential, None)
    }

    /// `rotate_key` stopped at `at`, as a crash there would stop it (tests of crash safety).
    #[doc(hidden)]
    pub fn rotate_key_interrupted(
        &self,
        mut store: Store,
        credential: Credential<'_>,
        at: RotationCrash,
    ) -> Result<()> {
        // Closing the connection here does to its WAL what recovery at the next open would.
        self.rotate(&mut store, credential, Some(at))
    }

    fn rotate(
        &self,
        store: &mut Store,
        credential: Credential<'_>,
        crash: Option<RotationCrash>,
    ) -> Result<()> {
        let user = store.user_id();
        self.check_owns(store)?;
        let _guard = self.guard();
        let mut key_file = self.read_key_file(user)?;
        let profile_key = self.check_credential(&mut key_file, credential)?;
        let data_key = random_key();
        key_file.pending_data_key = Some(wrap(&profile_key, Slot::DataKey, user, &data_key));
        self.write_key_file(&key_file)?;
        let stop = match crash {
            Some(RotationCrash::AfterPendingKey) => return Ok(()),
            Some(RotationCrash::AfterExport) => Some(RekeyStop::AfterExport),
            Some(RotationCrash::AfterRename) => Some(RekeyStop::AfterRename),
            None => None,
        };
        // On failure the pending key stays: the next unlock finds which key the file has.
        store.rekey_until(Encryption::Key(*data_key), stop)?;
        if stop.is_some() {
            return Ok(());
        }
        key_file.data_key = key_file
            .pending_data_key
            .take()
            .expect("set above, under the lock");
        self.write_key_file(&key_file)
    }

    /// Destroys the user's profile: the key file first (without it the store's bytes are
    /// noise), then the store's files and the directory. Close the user's store first, or use
    /// `wipe_store`. Wiping a profile that is not there is not an error.
    pub fn wipe_user(&self, user: Uuid) -> Result<()> {
        let _guard = self.guard();
        self.destroy_profile(user, None)
    }

    /// Wipes the profile of an open store (the app was told to wipe while the user works).
    pub fn wipe_store(&self, store: Store) -> Result<()> {
        self.check_owns(&store)?;
        let _guard = self.guard();
        self.destroy_profile(store.user_id(), Some(store))
    }

    /// Wipes every profile on the phone (a revoked or lost device).
    pub fn wipe_all(&self) -> Result<()> {
        let _guard = self.guard();
        let mut failure = None;
        for entry in std::fs::read_dir(self.users_dir())? {
            let path = entry?.path();
            let wiped = match path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| Uuid::try_parse(n).ok())
            {
                Some(user) if path == self.profile_dir(user) => self.destroy_profile(user, None),
                // Not a profile of ours, but in our directory: it goes too.
                _ if path.is_dir() => std::fs::remove_dir_all(&path).map_err(Error::from),
                _ => remove_if_exists(&path).map_err(Error::from),
            };
            // One profile that fails to go must not spare the others.
            if let Err(e) = wiped {
                failure.get_or_insert(e);
            }
        }
        sync_dir(&self.users_dir())?;
        failure.map_or(Ok(()), Err)
    }

    fn check_owns(&self, store: &Store) -> Result<()> {
        if store.path() != self.store_path(store.user_id()) {
            return Err(Error::NotAllowed {
                rule: "the store is not this vault's profile of its user".into(),
            });
        }
        Ok(())
    }

    /// The lock is held.
    fn destroy_profile(&self, user: Uuid, open: Option<Store>) -> Result<()> {
        let dir = self.profile_dir(user);
        if !dir.exists() {
            return Ok(());
        }
        let key = self.key_path(user);
        shred(&key)?;
        remove_if_exists(&crate::store::files::sidecar(&key, ".tmp"))?;
        sync_dir(&dir)?;
        match open {
            Some(store) => store.destroy()?,
            None => remove_store_files(&self.store_path(user))?,
        }
        std::fs::remove_dir_all(&dir)?;
        sync_dir(&self.users_dir())?;
        Ok(())
    }

    /// Seconds before the next PIN may be tried, if it must wait (`VaultConfig::pin_delay_after`).
    fn pin_wait(&self, key_file: &KeyFile, now_ms: i64) -> Option<u64> {
        let past_free = key_file
            .failed_pins
            .checked_sub(self.config.pin_delay_after)?;
        if self.config.pin_delay_seconds == 0 {
            return None;
        }
        let delay = self
            .config
            .pin_delay_seconds
            .saturating_mul(1u64.checked_shl(past_free).unwrap_or(u64::MAX))
            .min(MAX_PIN_DELAY_SECONDS.max(self.config.pin_delay_seconds));
        let last = key_file.last_failed_pin_ms?;
        let waited_ms = u64::try_from(now_ms.saturating_sub(last)).unwrap_or(0);
        let left_ms = (delay * 1000).saturating_sub(waited_ms);
        (left_ms > 0).then(|| left_ms.div_ceil(1000))
    }

    /// Checks a credential against the key file and returns the profile key. PIN attempts are
    /// counted on disk before the derivation runs. The lock is held.
    fn check_credential(
        &self,
        key_file: &mut KeyFile,
        credential: Credential<'_>,
    ) -> Result<SecretKey> {
        let user = key_file.user;
        let max = self.config.max_failed_pins;
        // The limit reached by an attempt that never finished (the app was killed during it).
        if key_file.failed_pins >= max {
            self.destroy_profile(user, None)?;
            return Err(Error::ProfileWiped);
        }
        match credential {
            Credential::Pin(pin) => {
                let now = now_ms();
                if let Some(wait) = self.pin_wait(key_file, now) {
                    // A clock set back behind the last wrong PIN counts the wait from now,
                    // not from a time that may not come back for years.
                    if key_file.last_failed_pin_ms.is_some_and(|last| last > now) {
                        key_file.last_failed_pin_ms = Some(now);
                        self.write_key_file(key_file)?;
                    }
                    return Err(Error::PinLocked {
                        retry_in_seconds: wait,
                    });
                }
                key_file.failed_pins += 1;
                key_file.last_failed_pin_ms = Some(now);
                self.write_key_file(key_file)?;
                let slot = &key_file.pin;
                let kek = pin_key(pin, &slot.salt, &slot.kdf)
                    .map_err(|_| damaged(user, "the PIN's derivation parameters are not valid"))?;
                match unwrap(&kek, Slot::PinWrap, user, &slot.profile_key)? {
                    Some(profile_key) => {
                        key_file.failed_pins = 0;
                        key_file.last_failed_pin_ms = None;
                        if key_file.pin.kdf != self.config.kdf {
                            key_file.pin = pin_wrap(pin, &profile_key, user, self.config.kdf)?;
                        }
                        self.write_key_file(key_file)?;
                        Ok(profile_key)
                    }
                    None if key_file.failed_pins >= max => {
                        self.destroy_profile(user, None)?;
                        Err(Error::ProfileWiped)
                    }
                    None => Err(Error::WrongPin {
                        attempts_left: max - key_file.failed_pins,
                    }),
                }
            }
            Credential::Keystore(key) => {
                let Some(wrapped) = &key_file.keystore else {
                    return Err(Error::NotAllowed {
                        rule: "this profile has no keystore unlock: unlock with the PIN".into(),
                    });
                };
                let profile_key = unwrap(key, Slot::KeystoreWrap, user, wrapped)?
                    .ok_or(Error::WrongKeyOrNotAStore)?;
                if key_file.failed_pins != 0 {
                    key_file.failed_pins = 0;
                    key_file.last_failed_pin_ms = None;
                    self.write_key_file(key_file)?;
                }
                Ok(profile_key)
            }
        }
    }

    /// Opens the user's store with the current data key, or with the pending one when a
    /// rotation stopped after replacing the file, and settles the key file accordingly. The
    /// lock is held.
    fn open_store(&self, key_file: &mut KeyFile, profile_key: &[u8; 32]) -> Result<Store> {
        let user = key_file.user;
        let db = self.store_path(user);
        // Opening creates a missing file: an empty store must never stand in for a lost one.
        if !db.is_file() {
            return Err(damaged(user, "the store's file is missing"));
        }
        // A profile's store was written when the profile was made: empty, it was cut (opened,
        // it would be a new empty store standing in for the lost one, its journal dropped).
        if db.metadata().is_ok_and(|m| m.len() == 0) {
            return Err(damaged(user, "the store's file is empty: it was cut short"));
        }
        let current = unwrap(profile_key, Slot::DataKey, user, &key_file.data_key)?
            .ok_or_else(|| damaged(user, "the data key does not unwrap"))?;
        let pending = match &key_file.pending_data_key {
            Some(wrapped) => unwrap(profile_key, Slot::DataKey, user, wrapped)?,
            None => None,
        };
        match Store::open(self.store_config(user, &current, None)) {
            Ok(store) => {
                // Any rotation stopped before its file replaced the old one: drop its file and
                // its key.
                remove_rekey_leftovers(&db)?;
                if key_file.pending_data_key.take().is_some() {
                    self.write_key_file(key_file)?;
                }
                Ok(store)
            }
            Err(Error::WrongKeyOrNotAStore) if pending.is_some() => {
                let pending = pending.expect("checked by the guard");
                let store = Store::open(self.store_config(user, &pending, None))?;
                key_file.data_key = key_file
                    .pending_data_key
                    .take()
                    .expect("pending came from it");
                self.write_key_file(key_file)?;
                remove_rekey_leftovers(&db)?;
                Ok(store)
            }
            // The PIN (or the keystore) unwrapped the data key: a store that does not open
            // with it is damaged (a bit flipped in its first page), not a wrong PIN, which an
            // app would tell its user to type again.
            Err(Error::WrongKeyOrNotAStore) => {
                Err(Error::Io(std::io::Error::other(PROFILE_STORE_UNREADABLE)))
            }
            Err(e) => Err(e),
        }
    }
}

/// Why a profile whose key its PIN unwrapped does not open (`Vault::open_store`).
const PROFILE_STORE_UNREADABLE: &str = "the profile's store does not open with the key its PIN \
     unlocked: its file is damaged, or its key file comes from another copy (restore both from \
     one copy, or wipe the profile and sync again)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_that_are_short_repeated_or_runs_are_refused() {
        for pin in ["12345", "000000", "123456", "987654", "aaaaaaa"] {
            let e = check_pin(pin, 6).expect_err(pin);
            assert_eq!(e.field, "pin");
        }
        for pin in ["120596", "482913", "kouassi-7", "135791"] {
            check_pin(pin, 6).expect(pin);
        }
    }

    #[test]
    fn a_wrap_opens_only_with_its_key_slot_and_user() {
        let (kek, key) = (random_key(), random_key());
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let wrapped = wrap(&kek, Slot::DataKey, a, &key);
        let opened = unwrap(&kek, Slot::DataKey, a, &wrapped).unwrap().unwrap();
        assert_eq!(*opened, *key);
        assert!(unwrap(&kek, Slot::DataKey, b, &wrapped).unwrap().is_none());
        assert!(unwrap(&kek, Slot::PinWrap, a, &wrapped).unwrap().is_none());
        assert!(
            unwrap(&random_key(), Slot::DataKey, a, &wrapped)
                .unwrap()
                .is_none()
        );
    }
}

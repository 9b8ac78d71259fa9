//! Several users on one phone: `Vault` (the core's `vault::Vault`) holds one profile per user,
//! each with its own store under its own key, unlocked by a PIN or by a key the platform's
//! keystore releases; and `HandOver`, open cases passed from one user's store to another's.
//!
//! Everything here blocks (files, Argon2id: a fraction of a second per PIN with the default
//! cost): call it off the UI thread. PINs and keys are never kept, logged or put in an error.

use crate::error::{Result, VigieError};
use crate::input;
use crate::listeners::{ChangeSource, RecordChange};
use crate::store::VigieStore;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use uuid::Uuid;
use vigie_core::{Credential, KdfParams, RecordKind};
use zeroize::Zeroizing;

/// How a vault treats its profiles. A field left `null`/`None` keeps the core's default:
/// Argon2id with 19 MiB, 2 passes, 1 lane (OWASP's minimum), 10 wrong PINs in a row before the
/// profile is wiped, PINs of 6 characters at least. Tests may ask for a cheap derivation
/// (`kdf_memory_kib = 64`, `kdf_iterations = 1`); an app should keep the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct VaultConfig {
    /// Argon2id memory cost in KiB for new PIN wraps (at most 1 GiB).
    #[uniffi(default = None)]
    pub kdf_memory_kib: Option<i32>,
    /// Argon2id passes (at most 64).
    #[uniffi(default = None)]
    pub kdf_iterations: Option<i32>,
    /// Argon2id lanes (at most 16).
    #[uniffi(default = None)]
    pub kdf_parallelism: Option<i32>,
    /// Wrong PINs in a row after which the profile is wiped (at least 1).
    #[uniffi(default = None)]
    pub max_failed_pins: Option<i32>,
    /// Shortest PIN accepted, in characters (at least 4).
    #[uniffi(default = None)]
    pub min_pin_chars: Option<i32>,
    /// Wrong PINs in a row that may follow one another at once (3); after them each attempt
    /// waits, `PinLocked` meanwhile.
    #[uniffi(default = None)]
    pub pin_delay_after: Option<i32>,
    /// The first wait in seconds (30; 0: none), doubled by each further wrong PIN up to 15
    /// minutes.
    #[uniffi(default = None)]
    pub pin_delay_seconds: Option<i32>,
}

fn unsigned(field: &str, value: Option<i32>, default: u32) -> Result<u32> {
    match value {
        None => Ok(default),
        Some(v) => {
            u32::try_from(v).map_err(|_| VigieError::validation(field, "must not be negative"))
        }
    }
}

impl VaultConfig {
    fn into_core(self) -> Result<vigie_core::VaultConfig> {
        let defaults = vigie_core::VaultConfig::default();
        Ok(vigie_core::VaultConfig {
            kdf: KdfParams {
                memory_kib: unsigned(
                    "kdf_memory_kib",
                    self.kdf_memory_kib,
                    defaults.kdf.memory_kib,
                )?,
                iterations: unsigned(
                    "kdf_iterations",
                    self.kdf_iterations,
                    defaults.kdf.iterations,
                )?,
                parallelism: unsigned(
                    "kdf_parallelism",
                    self.kdf_parallelism,
                    defaults.kdf.parallelism,
                )?,
            },
            max_failed_pins: unsigned(
                "max_failed_pins",
                self.max_failed_pins,
                defaults.max_failed_pins,
            )?,
            min_pin_chars: match self.min_pin_chars {
                None => defaults.min_pin_chars,
                Some(n) => unsigned("min_pin_chars", Some(n), 0)? as usize,
            },
            pin_delay_after: unsigned(
                "pin_delay_after",
                self.pin_delay_after,
                defaults.pin_delay_after,
            )?,
            pin_delay_seconds: unsigned(
                "pin_delay_seconds",
                self.pin_delay_seconds,
                defaults.pin_delay_seconds as u32,
            )?
            .into(),
            reference: defaults.reference,
        })
    }
}

/// Opens (creating it if needed) the vault in `dir`: the app's private files directory (exclude
/// it from backups). `config` `null`/`None` keeps every default. Blocks.
#[uniffi::export(default(config = None))]
pub fn open_vault(dir: String, config: Option<VaultConfig>) -> Result<Arc<Vault>> {
    let config = config.unwrap_or_default().into_core()?;
    let inner = vigie_core::Vault::open_with(dir, config)?;
    Ok(Arc::new(Vault {
        inner,
        opened: Mutex::new(Vec::new()),
        unlocking: Mutex::new(()),
        wiped_untold: Mutex::new(Vec::new()),
    }))
}

/// The profiles of the people who use this phone. Open one per directory in a process. Every
/// method blocks.
///
/// Errors: a wrong PIN is `WrongPin(attempts_left)`; the wrong PIN that reaches the limit wipes
/// the profile and is `ProfileWiped`; a user without a profile here is `NotFound` (kind
/// `profile`); a PIN too short or too easy to guess is `Validation` (field `pin`); a wrong
/// keystore key is `Authentication`. When a profile is wiped (a wrong PIN at the limit, from any
/// call that takes a PIN, or `wipe_user`, `wipe_all`), the user's stores this vault opened and
/// that are still open are closed: calling them raises `ProfileWiped`.
#[derive(uniffi::Object)]
pub struct Vault {
    inner: vigie_core::Vault,
    /// The stores this vault opened, to close before their profile is wiped.
    opened: Mutex<Vec<Weak<VigieStore>>>,
    /// Held from looking for a user's open store to recording the one opened (two unlocks at
    /// once, a screen and a background worker, share one store), and by every wipe (an unlock
    /// racing a wipe either opens before it, and its store is closed by it, or after, and
    /// finds no profile).
    unlocking: Mutex<()>,
    /// The stores a wipe closed, with what their listeners hear of it (every record removed),
    /// told once `unlocking` is released (`tell_wiped`): a listener that opens the next
    /// profile on hearing it (a shared tablet) waited on the wipe's own lock for ever.
    wiped_untold: Mutex<Vec<(Arc<VigieStore>, Vec<RecordChange>)>>,
}

fn keystore_key(key: &[u8]) -> Result<[u8; 32]> {
    key.try_into()
        .map_err(|_| VigieError::validation("keystore_key", "must be 32 bytes"))
}

impl Vault {
    fn opened(self: &Arc<Self>, store: vigie_core::Store) -> Arc<VigieStore> {
        let store = VigieStore::from_core(store);
        *store.vault.lock().unwrap_or_else(PoisonError::into_inner) = Arc::downgrade(self);
        let mut opened = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
        opened.retain(|s| s.strong_count() > 0);
        opened.push(Arc::downgrade(&store));
        store
    }

    /// Closes every store of `user` (every store if `None`) that this vault opened and that is
    /// still open, so that wiping never deletes files under an open connection. Later calls on
    /// them raise `ProfileWiped`.
    fn close_open_stores(&self, user: Option<Uuid>) -> Result<()> {
        let stores: Vec<Arc<VigieStore>> = self
            .opened
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for store in stores {
            if user.is_none_or(|u| store.user_id() == u.to_string()) {
                // Dropped without a checkpoint: the files are about to go.
                let (taken, removed) = store.take_for_wipe()?;
                drop(taken);
                self.wiped_untold
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((store, removed));
            }
        }
        Ok(())
    }

    /// Tells the listeners of the stores wipes closed (`wiped_untold`): called with no lock of
    /// the vault's held by this thread.
    fn tell_wiped(&self) {
        let untold = std::mem::take(
            &mut *self
                .wiped_untold
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for (store, removed) in untold {
            store.tell(&removed);
        }
    }

    fn rotate(&self, store: &VigieStore, credential: Credential<'_>) -> Result<()> {
        let user = input::id("user_id", &store.user_id())?;
        // The new key makes a new file: another store of the profile left open (a background
        // sync, another screen) would go on writing to the old one, and what it wrote be lost.
        let others_open = self
            .opened
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(Weak::upgrade)
            .any(|s| {
                !std::ptr::eq(Arc::as_ptr(&s), store)
                    && s.user_id() == store.user_id()
                    && s.is_open()
            });
        if others_open {
            return Err(VigieError::NotAllowed {
                reason: "another store of this profile is open: close it before rotating the \
                         key (it would go on writing to the file the rotation replaces)"
                    .into(),
            });
        }
        let rotated = store.with_store(|s| Ok(self.inner.rotate_key(s, credential)?));
        let rotated = self.after_pin(user, rotated);
        self.tell_wiped();
        rotated
    }

    /// Wipes the other profiles of this phone whose device the hub revoked, as `known_by`'s
    /// sync heard (`vigie_core::Vault::revoked_profiles`): their stores this vault opened are
    /// closed first, as by `wipe_user`.
    pub(crate) fn wipe_revoked(&self, known_by: &VigieStore) -> Result<()> {
        let _no_unlock_meanwhile = self.one_at_a_time();
        let users = known_by.with_store(|s| Ok(self.inner.revoked_profiles(s)?))?;
        for user in users {
            self.close_open_stores(Some(user))?;
            self.inner.wipe_user(user)?;
        }
        Ok(())
    }

    /// The store of `user` this vault opened that is still open, if any: unlocked again (a
    /// second screen, a background worker), the profile gives that one, so that every part
    /// of the app hears the others' writes and no two syncs of one file run side by side.
    fn still_open(&self, user: Uuid) -> Option<Arc<VigieStore>> {
        let user = user.to_string();
        self.opened
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(Weak::upgrade)
            .find(|s| s.user_id() == user && s.is_open())
    }

    /// Opens the user's store with `credential`, or gives the store of theirs still open once
    /// the credential is checked as an unlock checks it.
    fn unlock(self: &Arc<Self>, user: Uuid, credential: Credential<'_>) -> Result<Arc<VigieStore>> {
        let _one_at_a_time = self.one_at_a_time();
        if let Some(open) = self.still_open(user) {
            let checked = self
                .inner
                .verify(user, credential)
                .map_err(VigieError::from);
            self.after_pin(user, checked)?;
            return Ok(open);
        }
        let store = self
            .inner
            .unlock(user, credential)
            .map_err(VigieError::from);
        Ok(self.opened(self.after_pin(user, store)?))
    }

    /// Unlocks and wipes one at a time (`unlocking`); once released, the listeners of the
    /// stores a wipe closed meanwhile are told.
    fn one_at_a_time(&self) -> OneAtATime<'_> {
        OneAtATime {
            vault: self,
            held: Some(
                self.unlocking
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            ),
        }
    }

    /// A PIN attempt that reached the limit wiped the profile's files: the user's stores still
    /// open are closed too, so that nothing is written under them any more.
    fn after_pin<T>(&self, user: Uuid, result: Result<T>) -> Result<T> {
        if let Err(VigieError::ProfileWiped { .. }) = &result {
            self.close_open_stores(Some(user))?;
        }
        result
    }
}

#[uniffi::export]
impl Vault {
    /// The users with a profile on this phone (ids, in id order).
    pub fn users(&self) -> Result<Vec<String>> {
        Ok(self
            .inner
            .users()?
            .into_iter()
            .map(|u| u.to_string())
            .collect())
    }

    pub fn has_user(&self, user_id: String) -> Result<bool> {
        Ok(self.inner.has_user(input::id("user_id", &user_id)?))
    }

    /// The directory holding every profile: exclude it from backups.
    pub fn users_dir(&self) -> String {
        self.inner.users_dir().to_string_lossy().into_owned()
    }

    /// Creates the user's profile, protected by `pin`, and opens its new, empty store.
    /// `device_id` is the device id from the user's enrolment token (`parse_enrolment_token`);
    /// `null`/`None` gives a random one (a profile that never syncs with a hub). A profile that
    /// exists already is `Conflict`.
    pub fn create_user(
        self: Arc<Self>,
        user_id: String,
        device_id: Option<String>,
        pin: String,
    ) -> Result<Arc<VigieStore>> {
        let user = input::id("user_id", &user_id)?;
        let device = device_id
            .as_deref()
            .map(|d| input::id("device_id", d))
            .transpose()?;
        Ok(self.opened(self.inner.create_user(user, device, &pin)?))
    }

    /// Opens the user's store with their PIN. A wrong PIN is `WrongPin` with the attempts left;
    /// the one that reaches the limit wipes the profile (`ProfileWiped`). While a store of the
    /// user's that this vault opened is open (another screen, a background sync), the PIN is
    /// checked and that same store is given: one store per profile in the app.
    pub fn unlock_with_pin(
        self: Arc<Self>,
        user_id: String,
        pin: String,
    ) -> Result<Arc<VigieStore>> {
        let user = input::id("user_id", &user_id)?;
        self.unlock(user, Credential::Pin(&pin))
    }

    /// Opens the user's store with the 32-byte key the platform's keystore released (after
    /// biometrics). A wrong key is `Authentication` and is not counted; a profile without
    /// keystore unlock is `NotAllowed`. A store of the user's still open is given again, as
    /// by `unlock_with_pin`.
    pub fn unlock_with_keystore(
        self: Arc<Self>,
        user_id: String,
        keystore_key: Vec<u8>,
    ) -> Result<Arc<VigieStore>> {
        let user = input::id("user_id", &user_id)?;
        let key = keystore_key_checked(keystore_key)?;
        self.unlock(user, Credential::Keystore(&key))
    }

    /// Lets the user unlock with `keystore_key` (32 bytes the keystore keeps) from now on,
    /// besides the PIN, which proves it is them (and counts as an attempt).
    pub fn add_keystore_unlock(
        &self,
        user_id: String,
        pin: String,
        keystore_key: Vec<u8>,
    ) -> Result<()> {
        let user = input::id("user_id", &user_id)?;
        let key = keystore_key_checked(keystore_key)?;
        let added = self.inner.add_keystore_unlock(user, &pin, &key);
        let added = self.after_pin(user, added.map_err(VigieError::from));
        self.tell_wiped();
        added
    }

    /// Stops keystore unlock for the user (key lost or invalidated, biometrics turned off).
    pub fn remove_keystore_unlock(&self, user_id: String) -> Result<()> {
        Ok(self
            .inner
            .remove_keystore_unlock(input::id("user_id", &user_id)?)?)
    }

    pub fn has_keystore_unlock(&self, user_id: String) -> Result<bool> {
        Ok(self
            .inner
            .has_keystore_unlock(input::id("user_id", &user_id)?)?)
    }

    /// Replaces the user's PIN; the old one is checked (and counted) as at unlock.
    pub fn change_pin(&self, user_id: String, old_pin: String, new_pin: String) -> Result<()> {
        let user = input::id("user_id", &user_id)?;
        let changed = self.inner.change_pin(user, &old_pin, &new_pin);
        let changed = self.after_pin(user, changed.map_err(VigieError::from));
        self.tell_wiped();
        changed
    }

    /// Seconds before the user's next PIN may be tried (0: now): the app shows the wait
    /// instead of the PIN pad.
    pub fn pin_retry_in_seconds(&self, user_id: String) -> Result<u64> {
        Ok(self
            .inner
            .pin_retry_in_seconds(input::id("user_id", &user_id)?)?)
    }

    /// Wrong PINs the user may still enter before the profile is wiped.
    pub fn pin_attempts_left(&self, user_id: String) -> Result<i32> {
        let left = self
            .inner
            .pin_attempts_left(input::id("user_id", &user_id)?)?;
        Ok(i32::try_from(left).unwrap_or(i32::MAX))
    }

    /// Re-encrypts the user's open store (from this vault) under a new random key, keeping all
    /// its data; the store stays open. The PIN is checked (and counted) as at unlock. Crash-safe:
    /// whatever point a crash stops it at, the store opens at the next unlock.
    pub fn rotate_key_with_pin(&self, store: Arc<VigieStore>, pin: String) -> Result<()> {
        self.rotate(&store, Credential::Pin(&pin))
    }

    /// `rotate_key_with_pin`, proving it is the user with the keystore's key.
    pub fn rotate_key_with_keystore(
        &self,
        store: Arc<VigieStore>,
        keystore_key: Vec<u8>,
    ) -> Result<()> {
        let key = keystore_key_checked(keystore_key)?;
        self.rotate(&store, Credential::Keystore(&key))
    }

    /// Destroys the user's profile (key file first, then the store's files). Stores of that
    /// user this vault opened are closed first; calling them afterwards raises `ProfileWiped`.
    /// Wiping a profile that is not there is not an error.
    pub fn wipe_user(&self, user_id: String) -> Result<()> {
        let user = input::id("user_id", &user_id)?;
        let _no_unlock_meanwhile = self.one_at_a_time();
        self.close_open_stores(Some(user))?;
        Ok(self.inner.wipe_user(user)?)
    }

    /// Wipes every profile on the phone (the hub revoked the device, or it was lost). Open
    /// stores are closed first, as by `wipe_user`.
    pub fn wipe_all(&self) -> Result<()> {
        let _no_unlock_meanwhile = self.one_at_a_time();
        self.close_open_stores(None)?;
        Ok(self.inner.wipe_all()?)
    }
}

/// `Vault::one_at_a_time`'s hold.
struct OneAtATime<'a> {
    vault: &'a Vault,
    held: Option<std::sync::MutexGuard<'a, ()>>,
}

impl Drop for OneAtATime<'_> {
    fn drop(&mut self) {
        drop(self.held.take());
        self.vault.tell_wiped();
    }
}

/// The keystore's key as 32 bytes; the bytes received are wiped from memory either way.
fn keystore_key_checked(key: Vec<u8>) -> Result<Zeroizing<[u8; 32]>> {
    let key = Zeroizing::new(key);
    Ok(Zeroizing::new(keystore_key(&key)?))
}

// ---------------------------------------------------------------------------------------------
// Hand-over

/// Open cases handed from one user to another on this phone (`VigieStore.hand_over`), to pass
/// to the other user's store (`receive_hand_over`). It holds the cases' documents (personal
/// data) in memory only: it cannot be written out, and is gone with the process. The giver's
/// change of assignee is in their outbox, so the hub passes it on anyway at the next syncs.
#[derive(uniffi::Object)]
pub struct HandOver {
    pub(crate) inner: vigie_core::HandOver,
}

#[uniffi::export]
impl HandOver {
    /// The user who handed the cases over.
    pub fn from_user_id(&self) -> String {
        self.inner.from.to_string()
    }

    /// The user the cases are for.
    pub fn to_user_id(&self) -> String {
        self.inner.to.to_string()
    }

    pub fn case_ids(&self) -> Vec<String> {
        self.inner.cases.iter().map(|c| c.id.to_string()).collect()
    }
}

#[uniffi::export]
impl VigieStore {
    /// Hands open cases to another user of this phone: their assignee (`identified_by`, what
    /// the due lists follow) becomes `to_user_id`, as one ordinary edit per case in this store's
    /// outbox (all or none). Pass the result to the other user's store (`receive_hand_over`).
    /// A closed case, or a duplicate merged into another, is `NotAllowed`; so is a receiver
    /// whose areas do not cover a case, or whom this store's directory of users does not list
    /// once it synced (a user enrolled since: sync first), as for a case registered for a
    /// colleague or an edit of its `identified_by`.
    pub fn hand_over(&self, case_ids: Vec<String>, to_user_id: String) -> Result<Arc<HandOver>> {
        let ids = case_ids
            .iter()
            .map(|id| input::id("case_ids", id))
            .collect::<Result<Vec<Uuid>>>()?;
        let to = input::id("to_user_id", &to_user_id)?;
        let inner = self.with_store(|s| Ok(s.hand_over(&ids, to)?))?;
        self.changed(&ids, RecordKind::ChildCase, ChangeSource::Local);
        Ok(Arc::new(HandOver { inner }))
    }

    /// Merges cases handed to this store's user (all or none) and returns their ids: the user
    /// works on them at once, offline. A hand-over for another user is `NotAllowed`.
    pub fn receive_hand_over(&self, hand_over: Arc<HandOver>) -> Result<Vec<String>> {
        let ids = self.with_store(|s| Ok(s.receive_hand_over(&hand_over.inner)?))?;
        self.changed(&ids, RecordKind::ChildCase, ChangeSource::HandOver);
        Ok(ids.iter().map(Uuid::to_string).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> VaultConfig {
        VaultConfig {
            kdf_memory_kib: Some(64),
            kdf_iterations: Some(1),
            max_failed_pins: Some(2),
            ..VaultConfig::default()
        }
    }

    #[test]
    fn a_config_left_empty_is_the_cores_default_and_negatives_name_their_field() {
        let core = VaultConfig::default().into_core().unwrap();
        let defaults = vigie_core::VaultConfig::default();
        assert_eq!(core.kdf, defaults.kdf);
        assert_eq!(core.max_failed_pins, defaults.max_failed_pins);
        assert_eq!(core.min_pin_chars, defaults.min_pin_chars);
        let cheap = cheap().into_core().unwrap();
        assert_eq!((cheap.kdf.memory_kib, cheap.kdf.iterations), (64, 1));
        assert_eq!(cheap.kdf.parallelism, defaults.kdf.parallelism);
        let negative = VaultConfig {
            min_pin_chars: Some(-1),
            ..VaultConfig::default()
        };
        assert!(matches!(
            negative.into_core(),
            Err(VigieError::Validation { field, .. }) if field == "min_pin_chars"
        ));
    }

    #[test]
    fn wiping_closes_the_profiles_open_stores_and_says_so_afterwards() {
        let dir = tempfile::tempdir().unwrap();
        let vault = open_vault(dir.path().to_string_lossy().into_owned(), Some(cheap())).unwrap();
        let (user, other) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
        let store = vault
            .clone()
            .create_user(user.clone(), None, "482913".into())
            .unwrap();
        let kept = vault
            .clone()
            .create_user(other.clone(), None, "730615".into())
            .unwrap();
        vault.wipe_user(user.clone()).unwrap();
        assert!(matches!(
            store.count(RecordKind::Visit),
            Err(VigieError::ProfileWiped { .. })
        ));
        assert_eq!(kept.count(RecordKind::Visit).unwrap(), 0);
        assert_eq!(vault.users().unwrap(), vec![other]);
        // Wiping everything skips the store already wiped.
        vault.wipe_all().unwrap();
        assert!(matches!(
            kept.count(RecordKind::Visit),
            Err(VigieError::ProfileWiped { .. })
        ));
        assert!(vault.users().unwrap().is_empty());
    }

    #[test]
    fn a_wrong_pin_says_how_many_attempts_are_left_then_wipes() {
        let dir = tempfile::tempdir().unwrap();
        let vault = open_vault(dir.path().to_string_lossy().into_owned(), Some(cheap())).unwrap();
        let user = Uuid::now_v7().to_string();
        // The user's store is open (a session), and someone tries PINs on the lock screen.
        let open = vault
            .clone()
            .create_user(user.clone(), None, "482913".into())
            .unwrap();
        let first = vault.clone().unlock_with_pin(user.clone(), "000001".into());
        assert!(matches!(
            first,
            Err(VigieError::WrongPin { attempts_left: 1 })
        ));
        assert_eq!(open.count(RecordKind::Visit).unwrap(), 0);
        let last = vault.change_pin(user.clone(), "000002".into(), "730615".into());
        assert!(matches!(last, Err(VigieError::ProfileWiped { .. })));
        // Nothing is written under the wiped files any more.
        assert!(matches!(
            open.count(RecordKind::Visit),
            Err(VigieError::ProfileWiped { .. })
        ));
        assert!(!vault.has_user(user).unwrap());
    }
}

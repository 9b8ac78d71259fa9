//! Device enrolment and authentication.
//!
//! An administrator enrols a device for a user; the device receives an enrolment token once
//! (`vgd1.<device>.<user>.<secret>`) and presents it on every request. The hub keeps only the
//! SHA-256 of the secret, so its files never hold a usable credential.

use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use uuid::Uuid;
use vigie_core::Encryption;
use vigie_core::sync::RegisteredDevice;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing or malformed credentials")]
    Malformed,
    #[error("unknown device or wrong secret")]
    Unknown,
    #[error("this device has been revoked")]
    Revoked,
    /// An enrolment token no device used within `ENROLMENT_TOKEN_VALID_DAYS` of its issue (a QR
    /// code shown and never scanned, a token sent and lost): whoever found it later would get
    /// its user's whole scope.
    #[error(
        "this enrolment token was not used within {ENROLMENT_TOKEN_VALID_DAYS} days of being \
         issued: the administrator reissues it (vigie device reissue, or the console's devices page)"
    )]
    Expired,
    /// The registry's file does not open with the hub's key (or is not a registry).
    #[error("the device registry could not be opened: wrong key, or not a registry")]
    WrongKey,
    /// The registry's storage failed; the text names the failure, never a credential.
    #[error("registry storage error: {0}")]
    Storage(String),
    /// A copy of the hub opened with its key (a backup looked into) takes no revocation
    /// (`irreversible::kept_for_another`).
    #[error("{}", crate::irreversible::ON_A_COPY)]
    OnACopy,
    /// The disk the registry is on is full: a device's first sync, which certifies its keys,
    /// waits for space as a push does (503), rather than failing as a fault of the hub.
    #[error("registry storage error: the disk is full")]
    DiskFull,
    /// The database the registry is kept in cannot be reached (PostgreSQL down or restarting):
    /// devices are told to come back (503), as for a full disk.
    #[error("registry storage error: the database cannot be reached ({0})")]
    Unreachable(String),
    /// A registry of an earlier schema opened not to be upgraded (`Registry::open_with`).
    #[error(
        "the device registry's schema is older than this software's, and it was not to be upgraded"
    )]
    UpgradeWithheld,
    /// The registry's file is damaged (SQLite finds it malformed).
    #[error("registry storage error: its file is damaged")]
    Damaged,
}

impl From<vigie_core::Error> for AuthError {
    fn from(e: vigie_core::Error) -> Self {
        match e {
            vigie_core::Error::WrongKeyOrNotAStore => AuthError::WrongKey,
            vigie_core::Error::Storage(e) => e.into(),
            e => AuthError::Storage(e.to_string()),
        }
    }
}

impl From<rusqlite::Error> for AuthError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => AuthError::DiskFull,
            _ if is_damaged(&e) => AuthError::Damaged,
            _ => AuthError::Storage(vigie_core::error::storage_text(&e)),
        }
    }
}

/// Whether SQLite finds a hub file malformed (cut short, overwritten): the store's or the
/// registry's.
pub(crate) fn is_damaged(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// What a device presents: its id, its user's id and its secret (the format lives in the core,
/// which devices share).
pub use vigie_core::sync::EnrolmentToken as Token;

impl From<vigie_core::sync::MalformedToken> for AuthError {
    fn from(_: vigie_core::sync::MalformedToken) -> Self {
        AuthError::Malformed
    }
}

/// An enrolled device as the registry describes it (times in ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub device: Uuid,
    pub user: Uuid,
    pub enrolled_ms: i64,
    /// Its last authenticated request, to `SEEN_RESOLUTION_MS`; `None` before the first.
    pub last_seen_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
    /// Until when its token is good for a first sync, while no device used it (`None` once
    /// used, or for a token issued before tokens had an end).
    pub unused_until_ms: Option<i64>,
}

/// How long an enrolment token (or a reissued one) stays good for a device's first sync.
pub const ENROLMENT_TOKEN_VALID_DAYS: i64 = 14;

/// "Last seen" is written at most this often per device, so that authenticating stays a read.
pub const SEEN_RESOLUTION_MS: i64 = 60_000;

/// Whether a device's "last seen" must be written now: a minute old, or later than now by
/// more than a minute (written while the hub's clock ran ahead, then corrected: it would show
/// a device seen in the future, and one silent since among those seen, for as long).
pub(crate) fn seen_is_stale(last_seen_ms: Option<i64>, now_ms: i64) -> bool {
    last_seen_ms.is_none_or(|seen| {
        now_ms - seen >= SEEN_RESOLUTION_MS || seen - now_ms > SEEN_RESOLUTION_MS
    })
}

/// The registry's schema, by `PRAGMA user_version`; step `i` takes it from `i` to `i + 1`.
const REGISTRY_MIGRATIONS: &[&str] = &[
    // Before versions were kept, the table was created if missing: step 1 is a no-op on it.
    "CREATE TABLE IF NOT EXISTS devices (
         device      BLOB PRIMARY KEY,
         user_id     BLOB NOT NULL,
         secret_hash BLOB NOT NULL,
         enrolled_ms INTEGER NOT NULL,
         revoked_ms  INTEGER
     ) WITHOUT ROWID;",
    "ALTER TABLE devices ADD COLUMN last_seen_ms INTEGER;",
    // The console's accounts, invitations, sessions, failed sign-ins and audit log.
    crate::console::storage::EMBEDDED_SCHEMA,
    // Identity: the certificate last issued to each device.
    "ALTER TABLE devices ADD COLUMN certificate BLOB;",
    // The console's known browsers (sign-in throttling spares them).
    crate::console::storage::EMBEDDED_KNOWN_BROWSERS,
    // Until when a token no device used yet is good (tokens issued before: no end).
    "ALTER TABLE devices ADD COLUMN unused_until_ms INTEGER;",
    // ...and then: a token issued before that no device has used is good for 14 days from the
    // upgrade, as a new one is from its issue (a token printed by the earlier version and left
    // in a drawer stayed a working credential for good).
    "UPDATE devices SET unused_until_ms = CAST(strftime('%s', 'now') AS INTEGER) * 1000 + 14 * 86400000
     WHERE last_seen_ms IS NULL AND unused_until_ms IS NULL AND revoked_ms IS NULL;",
];

/// The registry schema this software writes.
pub const REGISTRY_SCHEMA_VERSION: i64 = REGISTRY_MIGRATIONS.len() as i64;

/// The hub's table of enrolled devices.
pub struct Registry {
    conn: Connection,
}

impl Registry {
    /// Opens (creating if needed) the registry at `path`, encrypted with the hub's key as the
    /// hub's store is (the core keys the connection).
    pub fn open(path: &Path, encryption: &Encryption) -> Result<Registry, AuthError> {
        Registry::open_with(path, encryption, true)
    }

    /// `open`; a registry of an earlier schema is refused rather than upgraded unless
    /// `upgrade` (`AuthError::UpgradeWithheld`).
    pub fn open_with(
        path: &Path,
        encryption: &Encryption,
        upgrade: bool,
    ) -> Result<Registry, AuthError> {
        let mut conn = vigie_core::store::open_keyed_connection(path, encryption)?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let version = usize::try_from(version).unwrap_or(usize::MAX);
        if !upgrade && (1..REGISTRY_MIGRATIONS.len()).contains(&version) {
            return Err(AuthError::UpgradeWithheld);
        }
        if version > REGISTRY_MIGRATIONS.len() {
            return Err(AuthError::Storage(format!(
                "the device registry's schema version {version} is newer than this software ({})",
                REGISTRY_MIGRATIONS.len()
            )));
        }
        let current = version == REGISTRY_MIGRATIONS.len();
        for step in &REGISTRY_MIGRATIONS[version..] {
            tx.execute_batch(step)?;
        }
        // Written at every open: a registry the hub cannot write is found when it opens. A
        // full disk is not such a fault: with nothing to migrate, what reads the registry
        // (listing users, a backup, a hub answering pulls) goes on, and writes say the disk
        // is full when they come.
        let written = tx
            .pragma_update(None, "user_version", REGISTRY_MIGRATIONS.len() as i64)
            .and_then(|()| tx.commit());
        match written {
            Ok(()) => {}
            Err(e) if current && e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) => {
                tracing::warn!("the device registry's disk is full: it is read, not written");
            }
            Err(e) => return Err(e.into()),
        }
        Ok(Registry { conn })
    }

    /// The registry's connection, for the console's tables in the same file.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Enrols a new device for a user and returns its token (shown once, never stored).
    pub fn enrol(&self, user: Uuid) -> Result<Token, AuthError> {
        self.enrol_device(user, Uuid::new_v4())?
            .ok_or_else(|| AuthError::Storage("a new device id was taken already".into()))
    }

    /// `enrol` under the device id `device`; `None` when it is enrolled already.
    pub fn enrol_device(&self, user: Uuid, device: Uuid) -> Result<Option<Token>, AuthError> {
        let token = reissued_token(device, user);
        let now = chrono::Utc::now().timestamp_millis();
        let added = self.conn.execute(
            "INSERT INTO devices (device, user_id, secret_hash, enrolled_ms, unused_until_ms)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (device) DO NOTHING",
            params![
                token.device.as_bytes(),
                user.as_bytes(),
                token.secret_hash(),
                now,
                unused_until(now)
            ],
        )?;
        Ok((added == 1).then_some(token))
    }

    /// Revokes a device: its next request is refused. Returns whether it was enrolled.
    pub fn revoke(&self, device: Uuid) -> Result<bool, AuthError> {
        let n = self.conn.execute(
            "UPDATE devices SET revoked_ms = ?2 WHERE device = ?1 AND revoked_ms IS NULL",
            params![device.as_bytes(), chrono::Utc::now().timestamp_millis()],
        )?;
        Ok(n == 1)
    }

    /// Keeps the revocation of a device this registry never enrolled (enrolled after the copy
    /// it was restored from, revoked since: the journal holds it): its next request is told
    /// to wipe, and the revocation is not found missing again at the next start.
    pub fn revoked_unknown(&self, device: Uuid) -> Result<(), AuthError> {
        let now = chrono::Utc::now().timestamp_millis();
        self.conn.execute(
            "INSERT INTO devices (device, user_id, secret_hash, enrolled_ms, revoked_ms)
             VALUES (?1, ?2, X'', ?3, ?3) ON CONFLICT (device) DO NOTHING",
            params![device.as_bytes(), Uuid::nil().as_bytes(), now],
        )?;
        Ok(())
    }

    /// Checks a presented token; returns the device's user. Notes when the device was last
    /// seen (a write at most once a minute per device).
    pub fn authenticate(&self, token: &Token) -> Result<Uuid, AuthError> {
        /// User, secret hash, revoked, last seen, good until if unused.
        type Row = (Vec<u8>, Vec<u8>, Option<i64>, Option<i64>, Option<i64>);
        let row: Option<Row> = self
            .conn
            .prepare_cached(
                "SELECT user_id, secret_hash, revoked_ms, last_seen_ms, unused_until_ms
                 FROM devices WHERE device = ?1",
            )?
            .query_row([token.device.as_bytes()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()?;
        let Some((user, stored_hash, revoked, last_seen, until)) = row else {
            return Err(AuthError::Unknown);
        };
        let now = chrono::Utc::now().timestamp_millis();
        let until = until.filter(|_| last_seen.is_none());
        let user = check_token(token, &user, &stored_hash, revoked.is_some(), until, now)?;
        if seen_is_stale(last_seen, now) {
            // Bookkeeping only: a registry that cannot be written now (a full disk) does not
            // refuse the device; what it asks is answered as the storage allows (503 when a
            // write finds the disk full).
            let seen = self
                .conn
                .prepare_cached("UPDATE devices SET last_seen_ms = ?2 WHERE device = ?1")
                .and_then(|mut update| update.execute(params![token.device.as_bytes(), now]));
            if let Err(e) = seen {
                static SAID: crate::logging::LogBudget = crate::logging::LogBudget::lasting();
                if let Some(unsaid) = SAID.take() {
                    tracing::warn!(error = %e, unsaid, "when devices were last seen was not recorded");
                }
            }
        }
        Ok(user)
    }

    /// Every enrolled device, revoked ones included, oldest first.
    pub fn devices(&self) -> Result<Vec<DeviceInfo>, AuthError> {
        let mut stmt = self.conn.prepare(
            "SELECT device, user_id, enrolled_ms, last_seen_ms, revoked_ms,
                    CASE WHEN last_seen_ms IS NULL THEN unused_until_ms END
             FROM devices ORDER BY enrolled_ms, device",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(
                |(device, user, enrolled_ms, last_seen_ms, revoked_ms, unused_until_ms)| {
                    let id = |b: &[u8]| {
                        Uuid::from_slice(b)
                            .map_err(|_| AuthError::Storage("a device row holds a bad id".into()))
                    };
                    Ok(DeviceInfo {
                        device: id(&device)?,
                        user: id(&user)?,
                        enrolled_ms,
                        last_seen_ms,
                        revoked_ms,
                        unused_until_ms,
                    })
                },
            )
            .collect()
    }

    /// A new token for an enrolled device (same device and user): the old one stops working at
    /// once. `Unknown` if no such device, `Revoked` if it was revoked (enrol a new one).
    pub fn reissue(&self, device: Uuid) -> Result<Token, AuthError> {
        let row: Option<(Vec<u8>, Option<i64>)> = self
            .conn
            .query_row(
                "SELECT user_id, revoked_ms FROM devices WHERE device = ?1",
                [device.as_bytes()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((user, revoked)) = row else {
            return Err(AuthError::Unknown);
        };
        if revoked.is_some() {
            return Err(AuthError::Revoked);
        }
        let user = Uuid::from_slice(&user)
            .map_err(|_| AuthError::Storage("a device row holds a bad id".into()))?;
        let token = reissued_token(device, user);
        self.conn.execute(
            // The device's keys are unbound: a store re-created with the new token (a wiped
            // profile) presents new ones, which its next sync certifies.
            // A device never seen gets its token's days again from now.
            "UPDATE devices SET secret_hash = ?2, certificate = NULL, unused_until_ms = ?3
             WHERE device = ?1 AND revoked_ms IS NULL",
            params![
                device.as_bytes(),
                token.secret_hash(),
                unused_until(chrono::Utc::now().timestamp_millis())
            ],
        )?;
        Ok(token)
    }
}

/// The registry as device identity needs it (`vigie_core::sync::DeviceRegistry`).
impl Registry {
    /// Every device that holds a certificate or is revoked, in one query.
    pub fn identities(&self) -> Result<Vec<RegisteredDevice>, AuthError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT device, certificate, revoked_ms IS NOT NULL FROM devices
             WHERE certificate IS NOT NULL OR revoked_ms IS NOT NULL",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, Option<Vec<u8>>>(1)?,
                    r.get::<_, bool>(2)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(device, certificate, revoked)| {
                Some(RegisteredDevice {
                    device: Uuid::from_slice(&device).ok()?,
                    certificate,
                    revoked,
                })
            })
            .collect())
    }

    /// `DeviceRegistry::keep_certificate`: kept only in place of `replacing`.
    pub fn keep_certificate(
        &self,
        device: Uuid,
        certificate: &[u8],
        replacing: Option<&[u8]>,
    ) -> Result<bool, AuthError> {
        let kept = self
            .conn
            .prepare_cached(
                "UPDATE devices SET certificate = ?2 WHERE device = ?1 AND certificate IS ?3",
            )?
            .execute(params![device.as_bytes(), certificate, replacing])?;
        Ok(kept == 1)
    }
}

/// Checks a token against what a registry holds for its device (whatever the backend).
/// Checks a presented token against its device's row: `unused_until`, until when the token is
/// good if no device used it yet (`last_seen_ms` unset; none for tokens issued before tokens
/// had an end).
pub(crate) fn check_token(
    token: &Token,
    stored_user: &[u8],
    stored_hash: &[u8],
    revoked: bool,
    unused_until: Option<i64>,
    now_ms: i64,
) -> Result<Uuid, AuthError> {
    // Known only by its revocation (`revoked_unknown`: enrolled after the copy the hub was
    // restored from): its secret cannot be checked, and need not be: the answer only tells
    // whoever holds that device's token to wipe it.
    if revoked && stored_user == Uuid::nil().as_bytes() {
        return Err(AuthError::Revoked);
    }
    // Compare every byte whatever the first difference, so timing tells nothing.
    let presented = token.secret_hash();
    let differs = stored_hash
        .iter()
        .zip(presented.iter())
        .fold(stored_hash.len() ^ presented.len(), |acc, (a, b)| {
            acc | usize::from(a ^ b)
        });
    if differs != 0 || stored_user != token.user.as_bytes() {
        return Err(AuthError::Unknown);
    }
    if revoked {
        return Err(AuthError::Revoked);
    }
    if unused_until.is_some_and(|until| now_ms > until) {
        return Err(AuthError::Expired);
    }
    Ok(token.user)
}

/// In a backup's copy of the registry: a token no device had used by then may have been used
/// since, so a restored hub does not refuse it for its age (its device would be locked out of
/// sending again what the restore lost); it is only revoked or reissued.
pub(crate) fn unused_tokens_without_end(copy: &Connection) -> rusqlite::Result<()> {
    // A registry of a version before tokens had an end (a backup taken by this version of a
    // hub an earlier one still serves) has none to take away.
    let has_ends: bool = copy.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('devices') WHERE name = 'unused_until_ms'",
        [],
        |r| r.get(0),
    )?;
    if has_ends {
        copy.execute(
            "UPDATE devices SET unused_until_ms = NULL WHERE last_seen_ms IS NULL",
            [],
        )?;
    }
    Ok(())
}

/// Until when a token issued at `now_ms` is good for a device's first sync.
pub(crate) fn unused_until(now_ms: i64) -> i64 {
    now_ms + ENROLMENT_TOKEN_VALID_DAYS * 24 * 3600 * 1000
}

/// A fresh token for a new device of `user`.
/// A token with a fresh secret for `device` of `user`.
pub(crate) fn reissued_token(device: Uuid, user: Uuid) -> Token {
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    Token::new(device, user, secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_of_the_first_schema_is_migrated_and_keeps_its_devices() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("devices.db");
        // The registry as it was created before its schema had versions (frozen).
        let token = reissued_token(Uuid::new_v4(), Uuid::new_v4());
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "PRAGMA journal_mode = WAL;
                 CREATE TABLE IF NOT EXISTS devices (
                     device      BLOB PRIMARY KEY,
                     user_id     BLOB NOT NULL,
                     secret_hash BLOB NOT NULL,
                     enrolled_ms INTEGER NOT NULL,
                     revoked_ms  INTEGER
                 ) WITHOUT ROWID;",
            )
            .unwrap();
            conn.execute(
                "INSERT INTO devices (device, user_id, secret_hash, enrolled_ms) VALUES (?1, ?2, ?3, 5)",
                params![token.device.as_bytes(), token.user.as_bytes(), token.secret_hash()],
            )
            .unwrap();
        }
        let registry = Registry::open(&path, &Encryption::Unencrypted).unwrap();
        let listed = registry.devices().unwrap();
        // The token no device used is good for 14 days from the upgrade, as a new one is.
        let until = listed[0]
            .unused_until_ms
            .expect("an end for the unused token");
        let from_now = until - chrono::Utc::now().timestamp_millis();
        let days = ENROLMENT_TOKEN_VALID_DAYS * 24 * 3600 * 1000;
        assert!((days - 60_000..=days).contains(&from_now), "{from_now}");
        assert_eq!(
            listed,
            vec![DeviceInfo {
                device: token.device,
                user: token.user,
                enrolled_ms: 5,
                last_seen_ms: None,
                revoked_ms: None,
                unused_until_ms: Some(until),
            }]
        );
        assert_eq!(registry.authenticate(&token).unwrap(), token.user);
        let seen = registry.devices().unwrap()[0].last_seen_ms.expect("seen");
        assert!(seen > 5);
        drop(registry);
        // Opening again changes nothing.
        let registry = Registry::open(&path, &Encryption::Unencrypted).unwrap();
        assert_eq!(registry.devices().unwrap()[0].last_seen_ms, Some(seen));
    }

    #[test]
    fn last_seen_is_written_at_most_once_a_minute() {
        assert!(seen_is_stale(None, 0));
        assert!(!seen_is_stale(Some(1_000), 1_000 + SEEN_RESOLUTION_MS - 1));
        assert!(seen_is_stale(Some(1_000), 1_000 + SEEN_RESOLUTION_MS));
        // Written while the clock ran a month ahead, then corrected: written again.
        let month = 30 * 24 * 3600 * 1000;
        assert!(seen_is_stale(Some(1_000 + month), 1_000));
        // Another hub process's clock a few seconds ahead is no reason to write.
        assert!(!seen_is_stale(Some(6_000), 1_000));
    }

    #[test]
    fn a_reissued_token_replaces_the_old_one_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let registry =
            Registry::open(&dir.path().join("devices.db"), &Encryption::Key([7; 32])).unwrap();
        let user = Uuid::new_v4();
        let old = registry.enrol(user).unwrap();
        let new = registry.reissue(old.device).unwrap();
        assert_eq!((new.device, new.user), (old.device, old.user));
        assert_ne!(new.to_text(), old.to_text());
        assert!(matches!(
            registry.authenticate(&old),
            Err(AuthError::Unknown)
        ));
        assert_eq!(registry.authenticate(&new).unwrap(), user);
        assert!(matches!(
            registry.reissue(Uuid::new_v4()),
            Err(AuthError::Unknown)
        ));
        assert!(registry.revoke(old.device).unwrap());
        assert!(matches!(
            registry.reissue(old.device),
            Err(AuthError::Revoked)
        ));
        assert!(matches!(
            registry.authenticate(&new),
            Err(AuthError::Revoked)
        ));
    }
}

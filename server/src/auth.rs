//! Device enrolment and authentication.
//!
//! An administrator enrols a device for a user; the device receives an enrolment token once
//! (`vgd1.<device>.<user>.<secret>`) and presents it on every request. The hub keeps only the
//! SHA-256 of the secret, so its files never hold a usable credential.

use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing or malformed credentials")]
    Malformed,
    #[error("unknown device or wrong secret")]
    Unknown,
    #[error("this device has been revoked")]
    Revoked,
    /// The registry's storage failed; the text names the failure, never a credential.
    #[error("registry storage error: {0}")]
    Storage(String),
}

impl From<rusqlite::Error> for AuthError {
    fn from(e: rusqlite::Error) -> Self {
        AuthError::Storage(e.to_string())
    }
}

/// What a device presents: its id, its user's id and its secret (the format lives in the core,
/// which devices share).
pub use vigie_core::sync::EnrolmentToken as Token;

impl From<vigie_core::sync::MalformedToken> for AuthError {
    fn from(_: vigie_core::sync::MalformedToken) -> Self {
        AuthError::Malformed
    }
}

/// The hub's table of enrolled devices.
pub struct Registry {
    conn: Connection,
}

impl Registry {
    pub fn open(path: &Path) -> Result<Registry, AuthError> {
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS devices (
                 device      BLOB PRIMARY KEY,
                 user_id     BLOB NOT NULL,
                 secret_hash BLOB NOT NULL,
                 enrolled_ms INTEGER NOT NULL,
                 revoked_ms  INTEGER
             ) WITHOUT ROWID;",
        )?;
        Ok(Registry { conn })
    }

    /// Enrols a new device for a user and returns its token (shown once, never stored).
    pub fn enrol(&self, user: Uuid) -> Result<Token, AuthError> {
        let token = new_token(user);
        self.conn.execute(
            "INSERT INTO devices (device, user_id, secret_hash, enrolled_ms) VALUES (?1, ?2, ?3, ?4)",
            params![
                token.device.as_bytes(),
                user.as_bytes(),
                token.secret_hash(),
                chrono::Utc::now().timestamp_millis()
            ],
        )?;
        Ok(token)
    }

    /// Revokes a device: its next request is refused. Returns whether it was enrolled.
    pub fn revoke(&self, device: Uuid) -> Result<bool, AuthError> {
        let n = self.conn.execute(
            "UPDATE devices SET revoked_ms = ?2 WHERE device = ?1 AND revoked_ms IS NULL",
            params![device.as_bytes(), chrono::Utc::now().timestamp_millis()],
        )?;
        Ok(n == 1)
    }

    /// Checks a presented token; returns the device's user.
    pub fn authenticate(&self, token: &Token) -> Result<Uuid, AuthError> {
        let row: Option<(Vec<u8>, Vec<u8>, Option<i64>)> = self
            .conn
            .prepare_cached(
                "SELECT user_id, secret_hash, revoked_ms FROM devices WHERE device = ?1",
            )?
            .query_row([token.device.as_bytes()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        let Some((user, stored_hash, revoked)) = row else {
            return Err(AuthError::Unknown);
        };
        check_token(token, &user, &stored_hash, revoked.is_some())
    }
}

/// Checks a token against what a registry holds for its device (whatever the backend).
pub(crate) fn check_token(
    token: &Token,
    stored_user: &[u8],
    stored_hash: &[u8],
    revoked: bool,
) -> Result<Uuid, AuthError> {
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
    Ok(token.user)
}

/// A fresh token for a new device of `user`.
pub(crate) fn new_token(user: Uuid) -> Token {
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    Token::new(Uuid::new_v4(), user, secret)
}

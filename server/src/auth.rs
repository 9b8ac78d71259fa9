//! Device enrolment and authentication.
//!
//! An administrator enrols a device for a user; the device receives an enrolment token once
//! (`vgd1.<device>.<user>.<secret>`) and presents it on every request. The hub keeps only the
//! SHA-256 of the secret, so its files never hold a usable credential.

use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
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
    #[error("registry storage error: {0}")]
    Storage(#[from] rusqlite::Error),
}

/// What a device presents: its id, its user's id and its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub device: Uuid,
    pub user: Uuid,
    secret: [u8; 32],
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("device", &self.device)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl Token {
    pub fn parse(text: &str) -> Result<Token, AuthError> {
        let mut parts = text.trim().split('.');
        let (Some("vgd1"), Some(device), Some(user), Some(secret), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(AuthError::Malformed);
        };
        Ok(Token {
            device: Uuid::try_parse(device).map_err(|_| AuthError::Malformed)?,
            user: Uuid::try_parse(user).map_err(|_| AuthError::Malformed)?,
            secret: unhex32(secret).ok_or(AuthError::Malformed)?,
        })
    }

    /// The text given to the device once, at enrolment.
    pub fn to_text(&self) -> String {
        format!(
            "vgd1.{}.{}.{}",
            self.device.simple(),
            self.user.simple(),
            hex(&self.secret)
        )
    }

    fn secret_hash(&self) -> [u8; 32] {
        Sha256::digest(self.secret).into()
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
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let token = Token {
            device: Uuid::new_v4(),
            user,
            secret,
        };
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
        // Compare every byte whatever the first difference, so timing tells nothing.
        let presented = token.secret_hash();
        let differs = stored_hash
            .iter()
            .zip(presented.iter())
            .fold(stored_hash.len() ^ presented.len(), |acc, (a, b)| {
                acc | usize::from(a ^ b)
            });
        if differs != 0 || user.as_slice() != token.user.as_bytes() {
            return Err(AuthError::Unknown);
        }
        if revoked.is_some() {
            return Err(AuthError::Revoked);
        }
        Ok(token.user)
    }
}

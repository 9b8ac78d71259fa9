//! The enrolment token a hub gives a device once: `vgd1.<device>.<user>.<secret>`.
//!
//! The device opens its store with the token's device and user ids (so that its Automerge actor
//! is bound to the device) and presents the whole token on every request. The hub keeps only
//! the SHA-256 of the secret.

use sha2::{Digest, Sha256};
use uuid::Uuid;

#[derive(Clone, PartialEq, Eq)]
pub struct EnrolmentToken {
    pub device: Uuid,
    pub user: Uuid,
    secret: [u8; 32],
}

/// A token that does not have the `vgd1.<device>.<user>.<64 hex digits>` form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed enrolment token")]
pub struct MalformedToken;

impl std::fmt::Debug for EnrolmentToken {
    // The secret never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrolmentToken")
            .field("device", &self.device)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl EnrolmentToken {
    /// A token for an enrolled device; the secret comes from the hub's random source.
    pub fn new(device: Uuid, user: Uuid, secret: [u8; 32]) -> EnrolmentToken {
        EnrolmentToken {
            device,
            user,
            secret,
        }
    }

    pub fn parse(text: &str) -> Result<EnrolmentToken, MalformedToken> {
        let mut parts = text.trim().split('.');
        let (Some("vgd1"), Some(device), Some(user), Some(secret), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(MalformedToken);
        };
        if secret.len() != 64 || !secret.is_ascii() {
            return Err(MalformedToken);
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte =
                u8::from_str_radix(&secret[2 * i..2 * i + 2], 16).map_err(|_| MalformedToken)?;
        }
        Ok(EnrolmentToken {
            device: Uuid::try_parse(device).map_err(|_| MalformedToken)?,
            user: Uuid::try_parse(user).map_err(|_| MalformedToken)?,
            secret: bytes,
        })
    }

    /// The text given to the device.
    pub fn to_text(&self) -> String {
        let secret: String = self.secret.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "vgd1.{}.{}.{secret}",
            self.device.simple(),
            self.user.simple()
        )
    }

    /// What the hub stores to check the secret.
    pub fn secret_hash(&self) -> [u8; 32] {
        Sha256::digest(self.secret).into()
    }
}

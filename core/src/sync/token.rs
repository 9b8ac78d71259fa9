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

    /// A token as typed: its letters in either case (ids and secret are hexadecimal, and a
    /// token read aloud or typed on a keyboard locked in capitals is the same token).
    pub fn parse(text: &str) -> Result<EnrolmentToken, MalformedToken> {
        let mut parts = text.trim().split('.');
        let (Some(tag), Some(device), Some(user), Some(secret), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(MalformedToken);
        };
        if !tag.eq_ignore_ascii_case("vgd1") {
            return Err(MalformedToken);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Typed in capitals (a keyboard locked so, a token read aloud), a token is the same one;
    /// anything else of another shape is malformed.
    #[test]
    fn a_token_reads_in_either_case() {
        let token = EnrolmentToken::new(Uuid::new_v4(), Uuid::new_v4(), [0xAB; 32]);
        let text = token.to_text();
        for typed in [
            text.clone(),
            text.to_uppercase(),
            format!(" {} \n", text.to_uppercase()),
        ] {
            assert!(
                EnrolmentToken::parse(&typed) == Ok(token.clone()),
                "{typed}"
            );
        }
        for broken in [
            text.replacen("vgd1", "vgd2", 1),
            text[..text.len() - 1].to_string(),
        ] {
            assert!(EnrolmentToken::parse(&broken).is_err(), "{broken}");
        }
    }
}

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

/// A token that does not have the `vgd1.<device>.<user>.<64 hex digits>` form, and which part
/// is wrong: whoever copies a token by hand (read aloud, from a screen) learns where to look.
/// No part of what was typed is repeated (the secret must not reach a log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MalformedToken {
    #[error("malformed enrolment token: it has {0} parts separated by dots, not 4")]
    Parts(usize),
    #[error("malformed enrolment token: its first part is not vgd1")]
    Tag,
    #[error("malformed enrolment token: its second part (the device) is not a device id")]
    Device,
    #[error("malformed enrolment token: its third part (the user) is not a user id")]
    User,
    #[error(
        "malformed enrolment token: its last part (the secret) has {0} characters, not 64 hexadecimal digits"
    )]
    SecretLength(usize),
    #[error("malformed enrolment token: its last part (the secret) is not hexadecimal digits")]
    SecretDigits,
}

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
        let parts: Vec<&str> = text.trim().split('.').collect();
        let [tag, device, user, secret] = parts[..] else {
            return Err(MalformedToken::Parts(parts.len()));
        };
        if !tag.eq_ignore_ascii_case("vgd1") {
            return Err(MalformedToken::Tag);
        }
        let device = Uuid::try_parse(device).map_err(|_| MalformedToken::Device)?;
        let user = Uuid::try_parse(user).map_err(|_| MalformedToken::User)?;
        let length = secret.chars().count();
        if length != 64 {
            return Err(MalformedToken::SecretLength(length));
        }
        if !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(MalformedToken::SecretDigits);
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&secret[2 * i..2 * i + 2], 16)
                .map_err(|_| MalformedToken::SecretDigits)?;
        }
        Ok(EnrolmentToken {
            device,
            user,
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
        let parts: Vec<&str> = text.split('.').collect();
        let with = |i: usize, part: &str| {
            let mut parts = parts.clone();
            parts[i] = part;
            parts.join(".")
        };
        let device_typo = parts[1].replacen(&parts[1][..1], "g", 1);
        let secret_typo = format!("{}o", &parts[3][..63]);
        for (broken, wrong) in [
            (text.replacen("vgd1", "vgd2", 1), MalformedToken::Tag),
            (
                text[..text.len() - 1].to_string(),
                MalformedToken::SecretLength(63),
            ),
            (format!("{text}0"), MalformedToken::SecretLength(65)),
            (with(1, &device_typo), MalformedToken::Device),
            (with(2, ""), MalformedToken::User),
            (with(3, &secret_typo), MalformedToken::SecretDigits),
            (with(3, &"é".repeat(64)), MalformedToken::SecretDigits),
            (parts[..3].join("."), MalformedToken::Parts(3)),
            (format!("{text}.x"), MalformedToken::Parts(5)),
            (String::new(), MalformedToken::Parts(1)),
        ] {
            assert_eq!(EnrolmentToken::parse(&broken), Err(wrong), "{broken}");
            let said = wrong.to_string();
            assert!(said.starts_with("malformed enrolment token: "), "{said}");
            assert!(
                !said.contains(&parts[3][..8]),
                "the secret is not repeated: {said}"
            );
        }
    }
}

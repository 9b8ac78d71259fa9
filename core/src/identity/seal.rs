//! Sealing bytes to recipients, age-style: a random file key, wrapped for each recipient's
//! X25519 key (a fresh ephemeral key per recipient, HKDF-SHA256, ChaCha20-Poly1305), and the
//! body encrypted with a key derived from it in 64 KiB chunks (the STREAM construction: a
//! counter and a last-chunk flag in each nonce), so a reader decrypts chunk by chunk and
//! notices any truncation, reordering or altered byte.
//!
//! ```text
//! "VGs1" | recipients: u16 LE | per recipient: ephemeral X25519 public (32) | wrapped key (48)
//!        | body chunks: ciphertext of 64 KiB + 16-byte tag, the last one shorter (or empty)
//! ```
//! Stanzas do not name their recipient: a reader tries each one with its own key.

use super::{IdResult, IdentityError};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use x25519_dalek::{EphemeralSecret, PublicKey, StaticSecret};
use zeroize::Zeroizing;

const SEALED_TAG: [u8; 4] = *b"VGs1";
const RECIPIENT_INFO: &[u8] = b"vigie sealed recipient v1";
const BODY_INFO: &[u8] = b"vigie sealed body v1";
const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
const STANZA: usize = 32 + 32 + TAG;
/// At most this many recipients in one sealed file.
pub const MAX_RECIPIENTS: usize = 4096;

/// A sealed file's header: what the body's key and the sender's signature are bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedHeader {
    /// SHA-256 of the header's bytes (tag, count, stanzas).
    pub hash: [u8; 32],
}

/// ChaCha20-Poly1305 under a 32-byte key (sealed bundles, and peer sessions' messages).
pub(super) fn cipher(key: &[u8; 32]) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(Key::from_slice(key))
}

fn wrap_key(shared: &[u8; 32], ephemeral: &[u8; 32], recipient: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(ephemeral);
    salt[32..].copy_from_slice(recipient);
    let mut key = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(&salt), shared)
        .expand(RECIPIENT_INFO, &mut *key)
        .expect("32 bytes is a valid HKDF length");
    key
}

fn body_key(file_key: &[u8; 32], header: &SealedHeader) -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(&header.hash), file_key)
        .expand(BODY_INFO, &mut *key)
        .expect("32 bytes is a valid HKDF length");
    key
}

fn chunk_nonce(counter: u64, last: bool) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[3..11].copy_from_slice(&counter.to_be_bytes());
    nonce[11] = u8::from(last);
    nonce
}

/// Seals the bytes `body` returns (given the header, which a signature inside should cover) to
/// every X25519 public key in `recipients`.
pub fn seal(
    recipients: &[[u8; 32]],
    body: impl FnOnce(&SealedHeader) -> Vec<u8>,
) -> IdResult<Vec<u8>> {
    if recipients.is_empty() {
        return Err(IdentityError::NoRecipient {
            reason: "a sealed bundle needs at least one recipient",
        });
    }
    if recipients.len() > MAX_RECIPIENTS {
        return Err(IdentityError::NoRecipient {
            reason: "too many recipients",
        });
    }
    let mut file_key = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(&mut *file_key);
    let mut out = SEALED_TAG.to_vec();
    out.extend_from_slice(&(recipients.len() as u16).to_le_bytes());
    for recipient in recipients {
        let ephemeral = EphemeralSecret::random_from_rng(OsRng);
        let ephemeral_public = PublicKey::from(&ephemeral).to_bytes();
        let shared = ephemeral.diffie_hellman(&PublicKey::from(*recipient));
        let key = wrap_key(shared.as_bytes(), &ephemeral_public, recipient);
        let wrapped = cipher(&key)
            .encrypt(Nonce::from_slice(&[0; 12]), &file_key[..])
            .expect("in-memory encryption");
        out.extend_from_slice(&ephemeral_public);
        out.extend_from_slice(&wrapped);
    }
    let header = SealedHeader {
        hash: Sha256::digest(&out).into(),
    };
    let plain = Zeroizing::new(body(&header));
    let body_cipher = cipher(&body_key(&file_key, &header));
    let chunks = plain.len().div_ceil(CHUNK).max(1);
    out.reserve(plain.len() + chunks * TAG);
    for i in 0..chunks {
        let part = &plain[(i * CHUNK).min(plain.len())..((i + 1) * CHUNK).min(plain.len())];
        let sealed = body_cipher
            .encrypt(
                Nonce::from_slice(&chunk_nonce(i as u64, i + 1 == chunks)),
                part,
            )
            .expect("in-memory encryption");
        out.extend_from_slice(&sealed);
    }
    Ok(out)
}

/// Opens a sealed file with one recipient's X25519 secret: the header (to check a signature
/// against) and the body, decrypted chunk by chunk. A body larger than `max_body` is refused.
pub fn open_sealed(
    sealed: &[u8],
    secret: &StaticSecret,
    max_body: usize,
) -> IdResult<(SealedHeader, Zeroizing<Vec<u8>>)> {
    let what = "sealed bundle";
    // Another format's tag: a bundle of another version of the app, not damage (a user would
    // copy the file again and again instead of updating).
    let rest = sealed.strip_prefix(&SEALED_TAG).ok_or(
        match sealed.starts_with(&SEALED_TAG[..3]) && sealed.len() > SEALED_TAG.len() {
            true => IdentityError::UnsupportedVersion { what },
            false => IdentityError::Malformed { what },
        },
    )?;
    if rest.len() < 2 {
        return Err(IdentityError::Malformed { what });
    }
    let count = u16::from_le_bytes([rest[0], rest[1]]) as usize;
    let header_len = 4 + 2 + count * STANZA;
    if count == 0 || count > MAX_RECIPIENTS || sealed.len() < header_len + TAG {
        return Err(IdentityError::Malformed { what });
    }
    let header = SealedHeader {
        hash: Sha256::digest(&sealed[..header_len]).into(),
    };
    let ours = PublicKey::from(secret).to_bytes();
    let mut file_key = None;
    for stanza in sealed[6..header_len].chunks_exact(STANZA) {
        let ephemeral: [u8; 32] = stanza[..32].try_into().expect("32 bytes");
        let shared = secret.diffie_hellman(&PublicKey::from(ephemeral));
        if !shared.was_contributory() {
            continue;
        }
        let key = wrap_key(shared.as_bytes(), &ephemeral, &ours);
        if let Ok(opened) = cipher(&key).decrypt(Nonce::from_slice(&[0; 12]), &stanza[32..]) {
            let opened = Zeroizing::new(opened);
            if let Ok(k) = <[u8; 32]>::try_from(&opened[..]) {
                file_key = Some(Zeroizing::new(k));
                break;
            }
        }
    }
    let file_key = file_key.ok_or(IdentityError::NotARecipient)?;
    let body_cipher = cipher(&body_key(&file_key, &header));
    let mut body = &sealed[header_len..];
    let mut plain = Zeroizing::new(Vec::new());
    let mut counter = 0u64;
    loop {
        let last = body.len() <= CHUNK + TAG;
        let (part, rest) = body.split_at(body.len().min(CHUNK + TAG));
        let opened = body_cipher
            .decrypt(
                Nonce::from_slice(&chunk_nonce(counter, last)),
                Payload {
                    msg: part,
                    aad: &[],
                },
            )
            .map_err(|_| IdentityError::Tampered)?;
        if plain.len() + opened.len() > max_body {
            return Err(IdentityError::Malformed { what });
        }
        plain.extend_from_slice(&opened);
        drop(Zeroizing::new(opened));
        if last {
            break;
        }
        body = rest;
        counter += 1;
    }
    Ok((header, plain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_bytes_open_for_each_recipient_only_and_unaltered() {
        let (a, b, c) = (
            StaticSecret::random_from_rng(OsRng),
            StaticSecret::random_from_rng(OsRng),
            StaticSecret::random_from_rng(OsRng),
        );
        let message: Vec<u8> = (0..(2 * CHUNK + 5)).map(|i| (i % 251) as u8).collect();
        let mut seen = None;
        let sealed = seal(
            &[
                PublicKey::from(&a).to_bytes(),
                PublicKey::from(&b).to_bytes(),
            ],
            |h| {
                seen = Some(*h);
                message.clone()
            },
        )
        .unwrap();
        for secret in [&a, &b] {
            let (header, plain) = open_sealed(&sealed, secret, usize::MAX).unwrap();
            assert_eq!(Some(header), seen);
            assert_eq!(&plain[..], &message[..]);
        }
        assert_eq!(
            open_sealed(&sealed, &c, usize::MAX).unwrap_err(),
            IdentityError::NotARecipient
        );
        for at in [10, 6 + STANZA + 3, 6 + 2 * STANZA + 3, sealed.len() - 1] {
            let mut altered = sealed.clone();
            altered[at] ^= 0x40;
            assert!(open_sealed(&altered, &a, usize::MAX).is_err(), "byte {at}");
        }
        // Cut at a chunk boundary: the last chunk is missing, and the flag says so.
        let cut = &sealed[..6 + 2 * STANZA + CHUNK + TAG];
        assert_eq!(
            open_sealed(cut, &a, usize::MAX).unwrap_err(),
            IdentityError::Tampered
        );
        // Empty bodies seal too.
        let empty = seal(&[PublicKey::from(&a).to_bytes()], |_| Vec::new()).unwrap();
        assert!(open_sealed(&empty, &a, usize::MAX).unwrap().1.is_empty());
        // A bundle of another format (another version of the app) says so; anything else is
        // malformed.
        let mut other = sealed.clone();
        other[3] = b'2';
        assert_eq!(
            open_sealed(&other, &a, usize::MAX).unwrap_err(),
            IdentityError::UnsupportedVersion {
                what: "sealed bundle"
            }
        );
        for garbage in [&b"VGs"[..], b"PK\x03\x04 a zip file", b""] {
            assert_eq!(
                open_sealed(garbage, &a, usize::MAX).unwrap_err(),
                IdentityError::Malformed {
                    what: "sealed bundle"
                }
            );
        }
    }
}

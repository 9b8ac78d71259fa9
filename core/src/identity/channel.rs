//! The encrypted channel of a peer session, set up by its handshake.
//!
//! Each side brings a fresh X25519 key to the handshake (in its hello or reply). Their shared
//! secret and a hash of what the handshake exchanged give, by HKDF-SHA256, a key for each
//! direction: first the handshake's keys, from the hello and the reply, which seal who each side
//! is; then the session's, from the whole transcript both sign. Every message sealed is so with
//! ChaCha20-Poly1305 under its direction's key, with the message's number in that direction as
//! nonce:
//!
//! ```text
//! "VGe1" | number: u64 LE | ciphertext and 16-byte tag (additional data: the tag and number)
//! ```
//!
//! A message sealed in another session, or altered, does not open; a message whose number was
//! already opened is one delivered twice.

use super::seal::cipher;
use super::{IdResult, IdentityError};
use chacha20poly1305::Nonce;
use chacha20poly1305::aead::{Aead, Payload};
use hkdf::Hkdf;
use rand::rngs::OsRng;
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// The tag of a sealed peer message.
pub(crate) const SEALED_MESSAGE_TAG: [u8; 4] = *b"VGe1";
const HEADER: usize = 4 + 8;
const TAG: usize = 16;

/// Which keys a channel holds: each has its own labels, so that no key serves both.
#[derive(Clone, Copy)]
pub(crate) enum Keys {
    /// The handshake's: they seal each side's certificate and signature.
    Handshake,
    /// The session's, once both sides are authenticated: they seal reconciliation.
    Session,
}

impl Keys {
    /// The HKDF labels of the initiator's direction and of the answerer's.
    fn labels(self) -> (&'static [u8], &'static [u8]) {
        match self {
            Keys::Handshake => (
                b"vigie peer handshake initiator to answerer v3",
                b"vigie peer handshake answerer to initiator v3",
            ),
            Keys::Session => (
                b"vigie peer initiator to answerer v3",
                b"vigie peer answerer to initiator v3",
            ),
        }
    }
}

/// One side's ephemeral X25519 key for one handshake (zeroed when dropped).
pub(crate) struct Ephemeral {
    secret: StaticSecret,
}

impl Ephemeral {
    pub(crate) fn generate() -> Ephemeral {
        Ephemeral {
            secret: StaticSecret::random_from_rng(OsRng),
        }
    }

    pub(crate) fn public(&self) -> [u8; 32] {
        PublicKey::from(&self.secret).to_bytes()
    }

    /// A channel's keys, from the other side's ephemeral key and the hash of what the handshake
    /// exchanged so far (`transcript`).
    pub(crate) fn channel(
        &self,
        theirs: &[u8; 32],
        transcript: &[u8; 32],
        initiator: bool,
        keys: Keys,
    ) -> IdResult<Channel> {
        let shared = self.secret.diffie_hellman(&PublicKey::from(*theirs));
        if !shared.was_contributory() {
            // A low-order point: the "shared" secret would be known to anyone.
            return Err(IdentityError::Handshake {
                step: "the peer's ephemeral key is not a usable key",
            });
        }
        let hkdf = Hkdf::<Sha256>::new(Some(transcript), shared.as_bytes());
        let key = |info: &[u8]| {
            let mut key = Zeroizing::new([0u8; 32]);
            hkdf.expand(info, &mut *key)
                .expect("32 bytes is a valid HKDF length");
            key
        };
        let (initiator_label, answerer_label) = keys.labels();
        let (to_answerer, to_initiator) = (key(initiator_label), key(answerer_label));
        let (send, receive) = if initiator {
            (to_answerer, to_initiator)
        } else {
            (to_initiator, to_answerer)
        };
        Ok(Channel {
            send,
            receive,
            sent: 0,
            opened: 0,
        })
    }
}

/// What opening a sealed message gave.
pub(crate) enum Opened {
    /// The next message: its plaintext.
    Next(Zeroizing<Vec<u8>>),
    /// A message already opened, delivered again.
    Again,
}

/// Both directions' keys and message numbers (keys zeroed when dropped).
pub(crate) struct Channel {
    send: Zeroizing<[u8; 32]>,
    receive: Zeroizing<[u8; 32]>,
    /// The number of the next message sealed.
    sent: u64,
    /// The number of the next message expected.
    opened: u64,
}

fn nonce(number: u64) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&number.to_be_bytes());
    nonce
}

fn refused(reason: &'static str) -> IdentityError {
    IdentityError::PeerMessage { reason }
}

impl Channel {
    /// Seals the next message to the other side.
    pub(crate) fn seal(&mut self, plain: &[u8]) -> Vec<u8> {
        let number = self.sent;
        self.sent += 1;
        let mut out = Vec::with_capacity(HEADER + plain.len() + TAG);
        out.extend_from_slice(&SEALED_MESSAGE_TAG);
        out.extend_from_slice(&number.to_le_bytes());
        let sealed = cipher(&self.send)
            .encrypt(
                Nonce::from_slice(&nonce(number)),
                Payload {
                    msg: plain,
                    aad: &out,
                },
            )
            .expect("in-memory encryption");
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a message from the other side (its size bounded by the caller). Nothing changes
    /// unless it is the next one and opens.
    pub(crate) fn open(&mut self, message: &[u8]) -> IdResult<Opened> {
        if !message.starts_with(&SEALED_MESSAGE_TAG) {
            return Err(refused("not sealed"));
        }
        if message.len() < HEADER + TAG {
            return Err(refused("truncated"));
        }
        let number = u64::from_le_bytes(message[4..HEADER].try_into().expect("8 bytes"));
        if number > self.opened {
            return Err(refused("a message is missing before this one"));
        }
        let plain = cipher(&self.receive)
            .decrypt(
                Nonce::from_slice(&nonce(number)),
                Payload {
                    msg: &message[HEADER..],
                    aad: &message[..HEADER],
                },
            )
            .map_err(|_| refused("not sealed in this session, or altered"))?;
        let plain = Zeroizing::new(plain);
        if number < self.opened {
            // The other side seals one message under each number: this one was opened before.
            return Ok(Opened::Again);
        }
        self.opened += 1;
        Ok(Opened::Next(plain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Channel, Channel) {
        let (i, a) = (Ephemeral::generate(), Ephemeral::generate());
        let transcript = [7u8; 32];
        (
            i.channel(&a.public(), &transcript, true, Keys::Session)
                .unwrap(),
            a.channel(&i.public(), &transcript, false, Keys::Session)
                .unwrap(),
        )
    }

    #[test]
    fn messages_open_once_in_order_and_only_in_their_session() {
        let (mut initiator, mut answerer) = pair();
        let first = initiator.seal(b"first");
        let second = initiator.seal(b"second");
        assert!(matches!(
            answerer.open(&second),
            Err(IdentityError::PeerMessage { .. })
        ));
        assert!(matches!(answerer.open(&first), Ok(Opened::Next(p)) if &p[..] == b"first"));
        assert!(matches!(answerer.open(&first), Ok(Opened::Again)));
        let mut altered = second.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(answerer.open(&altered).is_err());
        assert!(answerer.open(&second[..20]).is_err());
        assert!(matches!(answerer.open(&second), Ok(Opened::Next(p)) if &p[..] == b"second"));
        // A direction's messages do not open in the other direction, nor in another session.
        let back = answerer.seal(b"back");
        assert!(answerer.open(&back).is_err());
        let (_, mut elsewhere) = pair();
        assert!(elsewhere.open(&first).is_err());
        // Nor under the handshake's keys of the same exchange.
        let (i, a) = (Ephemeral::generate(), Ephemeral::generate());
        let mut session = i
            .channel(&a.public(), &[7; 32], true, Keys::Session)
            .unwrap();
        let mut handshake = a
            .channel(&i.public(), &[7; 32], false, Keys::Handshake)
            .unwrap();
        assert!(handshake.open(&session.seal(b"reconciliation")).is_err());
        assert!(matches!(initiator.open(&back), Ok(Opened::Next(p)) if &p[..] == b"back"));
    }

    #[test]
    fn a_low_order_key_is_refused() {
        let ephemeral = Ephemeral::generate();
        assert!(
            ephemeral
                .channel(&[0; 32], &[0; 32], true, Keys::Handshake)
                .is_err()
        );
    }
}

//! What a PostgreSQL hub stores of its records, sealed with keys derived from the hub's key, so
//! that the database, its dumps, its backups and its statement logs hold no personal data.
//!
//! - Bytes (a record's document, a quarantined change set, a record's area, an attachment's
//!   key) are sealed with
//!   XChaCha20-Poly1305: `0x01 || nonce (24 random bytes) || ciphertext || tag (16)`, the
//!   associated data naming what they are and whose: `vigie-pg-v1 / <what> / <record id>`, so a
//!   row's bytes moved to another row or column do not open.
//! - What the hub must match in SQL (a record's area codes at each level, for a device's scope)
//!   is kept as keyed hashes: HMAC-SHA256 under the index key of `level || country || 0 || code`.
//! - Keys: `HMAC-SHA256(hub key, label)` for each label below (the hub key is 32 random bytes,
//!   so one HMAC block is a sound key derivation); `vigie_meta.key_check` holds the hex of the
//!   check key, so a wrong key is refused at connection before anything is read or written.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use uuid::Uuid;
use vigie_core::{Area, Error, Result};

use crate::hub_key::HubKey;

type HmacSha256 = Hmac<hmac_sha2::Sha256>;

const FORMAT: u8 = 1;
const NONCE_BYTES: usize = 24;
const RECORD_KEY_LABEL: &[u8] = b"vigie hub postgres record aead v1";
const INDEX_KEY_LABEL: &[u8] = b"vigie hub postgres index hmac v1";
const CHECK_KEY_LABEL: &[u8] = b"vigie hub postgres key check v1";

/// What sealed bytes are: part of the associated data.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Sealed {
    /// `records.doc`: the document as the codec stores it.
    Document,
    /// `records.area` and `area_history.area`: where a record is (or was) filed.
    Area,
    /// `quarantine.changes`: changes held for review.
    Quarantined,
    /// `hub_identity.signing_seed`: the hub's signing key (whoever holds it can certify
    /// devices), under the nil id.
    HubIdentity,
    /// `devices.certificate`: the certificate last issued to a device (it names the user's
    /// areas), under the device's id.
    Certificate,
    /// `console_accounts.login_sealed`: a console account's sign-in name, under its user's id.
    SignInName,
    /// `attachments.file_key`: the key an attachment's segments are sealed under, under the
    /// attachment's id (in clear, it would open the child's photos and documents beside it).
    FileKey,
}

impl Sealed {
    fn label(self) -> &'static [u8] {
        match self {
            Sealed::Document => b"document",
            Sealed::Area => b"area",
            Sealed::Quarantined => b"quarantined",
            Sealed::HubIdentity => b"hub identity",
            Sealed::Certificate => b"certificate",
            Sealed::SignInName => b"sign-in name",
            Sealed::FileKey => b"attachment file key",
        }
    }
}

fn derive(key: &[u8], label: &[u8]) -> [u8; 32] {
    let mut mac =
        <HmacSha256 as hmac::KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(label);
    mac.finalize().into_bytes().into()
}

/// The hub's sealing keys, derived once from its key.
pub(crate) struct Sealer {
    aead: XChaCha20Poly1305,
    index: [u8; 32],
    check: [u8; 32],
}

impl Sealer {
    pub(crate) fn new(key: &HubKey) -> Sealer {
        Sealer {
            aead: XChaCha20Poly1305::new(&derive(&key.0, RECORD_KEY_LABEL).into()),
            index: derive(&key.0, INDEX_KEY_LABEL),
            check: derive(&key.0, CHECK_KEY_LABEL),
        }
    }

    /// What `vigie_meta.key_check` holds for this key (reveals nothing of the key).
    pub(crate) fn key_check(&self) -> String {
        self.check.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn associated(what: Sealed, id: Uuid) -> Vec<u8> {
        let mut ad = b"vigie-pg-v1/".to_vec();
        ad.extend_from_slice(what.label());
        ad.push(b'/');
        ad.extend_from_slice(id.as_bytes());
        ad
    }

    pub(crate) fn seal(&self, what: Sealed, id: Uuid, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = Self::associated(what, id);
        let sealed = self
            .aead
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 seals any length a row holds");
        let mut out = Vec::with_capacity(1 + NONCE_BYTES + sealed.len());
        out.push(FORMAT);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// The plain bytes; damaged, moved or foreign bytes are `DamagedDocument` (never shown).
    pub(crate) fn open(&self, what: Sealed, id: Uuid, sealed: &[u8]) -> Result<Vec<u8>> {
        let damaged = || Error::DamagedDocument {
            id,
            reason: format!(
                "its sealed {} does not open with the hub's key",
                String::from_utf8_lossy(what.label())
            ),
        };
        if sealed.len() < 1 + NONCE_BYTES || sealed[0] != FORMAT {
            return Err(damaged());
        }
        let (nonce, body) = sealed[1..].split_at(NONCE_BYTES);
        let aad = Self::associated(what, id);
        self.aead
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: &aad,
                },
            )
            .map_err(|_| damaged())
    }

    pub(crate) fn seal_area(&self, id: Uuid, area: &Area) -> Vec<u8> {
        let parts = [
            area.country.as_str(),
            &area.region,
            &area.district,
            &area.community,
        ];
        self.seal(Sealed::Area, id, parts.join("\0").as_bytes())
    }

    pub(crate) fn open_area(&self, id: Uuid, sealed: &[u8]) -> Result<Area> {
        let plain = self.open(Sealed::Area, id, sealed)?;
        let text = String::from_utf8(plain).map_err(|_| Error::DamagedDocument {
            id,
            reason: "its sealed area is not text".into(),
        })?;
        let parts: Vec<&str> = text.split('\0').collect();
        match parts[..] {
            [country, region, district, community] => {
                Ok(Area::new(country, region, district, community))
            }
            _ => Err(Error::DamagedDocument {
                id,
                reason: "its sealed area has not four levels".into(),
            }),
        }
    }

    /// HMAC-SHA256 under the index key of `tag || scope || 0x00 || value`.
    fn index_hash(&self, tag: u8, scope: &str, value: &str) -> Vec<u8> {
        let mut mac = <HmacSha256 as hmac::KeyInit>::new_from_slice(&self.index)
            .expect("HMAC takes any key length");
        mac.update(&[tag]);
        mac.update(scope.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// The keyed hash an area code is matched by at its level (0 country … 3 community).
    pub(crate) fn area_hash(&self, level: u8, country: &str, code: &str) -> Vec<u8> {
        self.index_hash(level, country, code)
    }

    /// The keyed hash a console value is looked up by (`console_accounts.login_h`, the keys of
    /// `console_failures`): a sign-in name, or what someone typed in its field, is never kept
    /// in clear. `purpose` keeps each use's hashes apart; the leading 0xff keeps them apart
    /// from `area_hash`'s, whose first byte is a level (0–3).
    pub(crate) fn lookup_hash(&self, purpose: &str, value: &str) -> Vec<u8> {
        self.index_hash(0xff, purpose, value)
    }

    /// The keyed hashes of an area's four levels, as `records` keeps them.
    pub(crate) fn area_hashes(&self, area: &Area) -> [Vec<u8>; 4] {
        [
            self.area_hash(0, &area.country, &area.country),
            self.area_hash(1, &area.country, &area.region),
            self.area_hash(2, &area.country, &area.district),
            self.area_hash(3, &area.country, &area.community),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_bytes_open_only_in_their_place_and_with_their_key() {
        let sealer = Sealer::new(&HubKey([1; 32]));
        let id = Uuid::from_u128(7);
        let sealed = sealer.seal(Sealed::Document, id, b"Akossiwa Mensah");
        assert!(!sealed.windows(7).any(|w| w == b"Akossiw"));
        assert_eq!(
            sealer.open(Sealed::Document, id, &sealed).unwrap(),
            b"Akossiwa Mensah"
        );
        assert!(sealer.open(Sealed::Quarantined, id, &sealed).is_err());
        assert!(
            sealer
                .open(Sealed::Document, Uuid::from_u128(8), &sealed)
                .is_err()
        );
        assert!(
            Sealer::new(&HubKey([2; 32]))
                .open(Sealed::Document, id, &sealed)
                .is_err()
        );
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(sealer.open(Sealed::Document, id, &flipped).is_err());
        assert!(sealer.open(Sealed::Document, id, &sealed[..10]).is_err());
    }

    #[test]
    fn areas_round_trip_and_hash_per_key_and_level() {
        let sealer = Sealer::new(&HubKey([1; 32]));
        let id = Uuid::from_u128(7);
        let area = Area::new("CI", "CI-R1", "CI-R1-D1", "CI-R1-D1-C1");
        assert_eq!(
            sealer.open_area(id, &sealer.seal_area(id, &area)).unwrap(),
            area
        );
        assert_ne!(
            sealer.area_hash(1, "CI", "X"),
            sealer.area_hash(2, "CI", "X")
        );
        assert_ne!(
            sealer.area_hash(1, "CI", "X"),
            Sealer::new(&HubKey([2; 32])).area_hash(1, "CI", "X")
        );
        assert_ne!(
            Sealer::new(&HubKey([1; 32])).key_check(),
            Sealer::new(&HubKey([2; 32])).key_check()
        );
    }
}

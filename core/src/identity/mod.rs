//! Who a device is, as its peers and the readers of its bundles can check without the hub.
//!
//! Each device makes, at enrolment (its first sync), an Ed25519 signing key and an X25519 key for
//! receiving sealed bundles; both stay in its encrypted store. The hub certifies the public
//! halves with the device's id, its user, role and areas and an expiry, signed by the hub's own
//! Ed25519 key (`HubKey`). Devices pin the hub's key at their first sync and receive through sync
//! their certificate (renewed when the role or the areas change, or less than 45 of its 60 days are left), the
//! hub's signed revocation list and a directory of the other devices' certificates.
//!
//! Formats (ARCHITECTURE.md, "Identity"): every structure is hand-encoded, little-endian, with a
//! 4-byte tag that carries its version, and signed over a domain-separation label and its bytes.

pub(crate) mod channel;
mod seal;

pub use seal::{SealedHeader, open_sealed, seal};

use crate::domain::codes::Role;
use crate::domain::rights::Principal;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use rand::rngs::OsRng;
use sha2::Sha256;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// Why an identity, a certificate, a handshake or a sealed bundle was refused. The text names
/// the problem, never a key or a record's content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("this device has no certificate yet: sync with the hub first")]
    NoCertificate,
    #[error("damaged or malformed {what}")]
    Malformed { what: &'static str },
    #[error(
        "unsupported {what} version: made by another version of the app (update the app on both devices)"
    )]
    UnsupportedVersion { what: &'static str },
    #[error("the certificate was issued by another hub")]
    UnknownHub,
    #[error("the signature of the {what} does not verify: forged or altered")]
    BadSignature { what: &'static str },
    #[error(
        "the certificate of device {device} has expired: it is renewed at that device's next sync with the hub (or this device's clock runs ahead)"
    )]
    Expired { device: Uuid },
    #[error("device {device} has been revoked")]
    Revoked { device: Uuid },
    /// A bundle whose certificate this hub signed for a device its registry does not hold:
    /// the hub was restored from a backup made before the device was enrolled (README,
    /// "Backups and restore").
    #[error(
        "device {device} is not enrolled on this hub: enrolled after the backup this hub was restored from, or by another hub"
    )]
    NotEnrolled { device: Uuid },
    /// A bundle sealed under keys the hub no longer binds to its device (`vigie device
    /// reissue` unbinds them; a profile made again presents new ones).
    #[error(
        "the bundle was sealed under keys device {device} no longer holds (it was reissued since): export it again from the device"
    )]
    KeysReplaced { device: Uuid },
    #[error(
        "the certificate of device {device} was replaced by a newer one: its user's role or areas changed (that device must sync with the hub first), or it was set up again (its token reissued: only the new setup's bundles and sessions are taken)"
    )]
    Superseded { device: Uuid },
    #[error("the hub's key differs from the one this device pinned at enrolment")]
    HubKeyChanged,
    #[error("the certificate does not name this device's keys")]
    NotOurKeys,
    #[error("peer handshake: {step}")]
    Handshake { step: &'static str },
    #[error(
        "the bundle is not sealed to this device: it was made for other devices or another area; or, if it was meant for this one, the exporter's phone did not know this device at its last sync with the hub (then sync both phones and export it again), or the file was damaged on its way (copy it again)"
    )]
    NotARecipient,
    #[error("the sealed bundle was damaged or altered")]
    Tampered,
    #[error("record {record} lies outside the scope of the sender or of this device")]
    OutOfScope { record: Uuid },
    #[error("no recipient: {reason}")]
    NoRecipient { reason: &'static str },
    /// An export whose records its recipients may not all read (`Store::export_bundle`):
    /// `recipient` names the recipient (a device's id, area codes), or is empty when it is the
    /// recipients together.
    #[error("nothing to seal for {recipient}: {reason}")]
    NothingForRecipient {
        recipient: String,
        reason: &'static str,
    },
    /// A peer's message after the handshake that is not sealed in this session (another
    /// session's, altered, plaintext) or comes out of order.
    #[error("peer message refused: {reason}")]
    PeerMessage { reason: &'static str },
    /// A received record holds a change under this device's own actor that this device does
    /// not hold: a device never gets its own changes back from a peer or a bundle, only ones
    /// it has, so another device wrote it in this device's name.
    #[error("record {record} holds a change in this device's name that it never made")]
    ForgedOwnChange { record: Uuid },
}

type IdResult<T> = std::result::Result<T, IdentityError>;

/// How long a certificate is valid. A device offline for longer is refused by its peers and
/// their bundles until it syncs; the hub renews a certificate once less than three quarters of
/// this are left (`is_due_for_renewal`), so that a device that synced keeps 45 days or more of exchanges
/// without the hub: districts without a network for weeks live on bundles and peers. The
/// revocation list reaches every device that syncs, whatever the lifetime: only peers offline
/// since a revocation take a revoked device for the rest of its certificate.
pub const CERTIFICATE_LIFETIME_MS: i64 = 60 * 24 * 3600 * 1000;

const CERTIFICATE_TAG: [u8; 4] = *b"VGc1";
const REVOCATIONS_TAG: [u8; 4] = *b"VGl1";
const CERTIFICATE_LABEL: &[u8] = b"vigie certificate v1\0";
const REVOCATIONS_LABEL: &[u8] = b"vigie revocations v1\0";
const DIRECTORY_LABEL: &[u8] = b"vigie directory v1\0";
/// What a hub signs to order a device it revoked to wipe itself: the device's id, under a label
/// of its own, so that no other signature of the hub's reads as one.
const WIPE_ORDER_LABEL: &[u8] = b"vigie wipe order v1\0";
const HUB_AGREEMENT_INFO: &[u8] = b"vigie hub agreement key v1";
/// HKDF info of the keys a reissued device's certificate names until it binds its own.
const UNBOUND_DEVICE_INFO: &[u8] = b"vigie unbound device keys v1";

/// A device's public keys, as it presents them to the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PublicKeys {
    /// Ed25519: signs handshakes and bundles.
    pub signing: [u8; 32],
    /// X25519: receives sealed bundles.
    pub agreement: [u8; 32],
}

/// A device's secret keys (kept in its encrypted store; zeroed when dropped).
pub struct DeviceKeys {
    signing: SigningKey,
    agreement: StaticSecret,
}

impl std::fmt::Debug for DeviceKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceKeys")
            .field("public", &self.public())
            .finish_non_exhaustive()
    }
}

impl DeviceKeys {
    pub fn generate() -> DeviceKeys {
        DeviceKeys {
            signing: SigningKey::generate(&mut OsRng),
            agreement: StaticSecret::random_from_rng(OsRng),
        }
    }

    /// The 64 bytes the store keeps: the Ed25519 seed, then the X25519 secret.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(64));
        out.extend_from_slice(&self.signing.to_bytes());
        out.extend_from_slice(self.agreement.as_bytes());
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> IdResult<DeviceKeys> {
        let malformed = IdentityError::Malformed {
            what: "device keys",
        };
        if bytes.len() != 64 {
            return Err(malformed);
        }
        let seed: [u8; 32] = bytes[..32].try_into().map_err(|_| malformed.clone())?;
        let secret: [u8; 32] = bytes[32..].try_into().map_err(|_| malformed)?;
        Ok(DeviceKeys {
            signing: SigningKey::from_bytes(&seed),
            agreement: StaticSecret::from(secret),
        })
    }

    pub fn public(&self) -> PublicKeys {
        PublicKeys {
            signing: self.signing.verifying_key().to_bytes(),
            agreement: PublicKey::from(&self.agreement).to_bytes(),
        }
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    pub(crate) fn agreement(&self) -> &StaticSecret {
        &self.agreement
    }
}

/// The hub's public keys, as devices pin them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HubPublic {
    pub signing: [u8; 32],
    /// X25519, derived from the signing seed (HKDF): bundles sealed to the hub.
    pub agreement: [u8; 32],
}

/// The hub's signing key: created on first start, kept in the hub's registry.
pub struct HubKey {
    signing: SigningKey,
}

impl HubKey {
    pub fn generate() -> HubKey {
        HubKey {
            signing: SigningKey::generate(&mut OsRng),
        }
    }

    /// The 32-byte seed the hub keeps.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    pub fn from_bytes(bytes: &[u8]) -> IdResult<HubKey> {
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|_| IdentityError::Malformed { what: "hub key" })?;
        Ok(HubKey {
            signing: SigningKey::from_bytes(&seed),
        })
    }

    /// The hub's X25519 secret: a separate key, derived from the seed so that nothing more
    /// needs to be kept.
    pub fn agreement(&self) -> StaticSecret {
        let hkdf = Hkdf::<Sha256>::new(None, self.signing.as_bytes());
        let mut secret = Zeroizing::new([0u8; 32]);
        hkdf.expand(HUB_AGREEMENT_INFO, &mut *secret)
            .expect("32 bytes is a valid HKDF length");
        StaticSecret::from(*secret)
    }

    /// The keys a device's certificate names once its token was reissued and before the store
    /// made with the new token binds its own: derived from this key and the device (so the hub
    /// knows them for what they are), held by no store. The certificate naming them supersedes
    /// the old store's with the peers it meets (`Trust::newest`); a bundle sealed to them opens
    /// on no phone.
    pub fn unbound_keys(&self, device: Uuid) -> PublicKeys {
        let hkdf = Hkdf::<Sha256>::new(Some(device.as_bytes()), self.signing.as_bytes());
        let mut seeds = Zeroizing::new([0u8; 64]);
        hkdf.expand(UNBOUND_DEVICE_INFO, &mut *seeds)
            .expect("64 bytes is a valid HKDF length");
        let mut signing = Zeroizing::new([0u8; 32]);
        let mut agreement = Zeroizing::new([0u8; 32]);
        signing.copy_from_slice(&seeds[..32]);
        agreement.copy_from_slice(&seeds[32..]);
        PublicKeys {
            signing: SigningKey::from_bytes(&signing).verifying_key().to_bytes(),
            agreement: PublicKey::from(&StaticSecret::from(*agreement)).to_bytes(),
        }
    }

    pub fn public(&self) -> HubPublic {
        HubPublic {
            signing: self.signing.verifying_key().to_bytes(),
            agreement: PublicKey::from(&self.agreement()).to_bytes(),
        }
    }

    /// A certificate for `who`'s device and its keys, valid from `now_ms`.
    pub fn certify(&self, who: &Principal, keys: &PublicKeys, now_ms: i64) -> Certificate {
        self.certify_lasting(who, keys, now_ms, CERTIFICATE_LIFETIME_MS)
    }

    /// `certify` for `lifetime_ms`: an earlier version's 30-day certificate re-issued to
    /// expire 60 days after its first day (`sync::identity`), or made as it was, in tests.
    pub fn certify_lasting(
        &self,
        who: &Principal,
        keys: &PublicKeys,
        now_ms: i64,
        lifetime_ms: i64,
    ) -> Certificate {
        let mut certificate = Certificate {
            hub: self.signing.verifying_key().to_bytes(),
            device: who.device,
            user: who.user,
            role: who.role,
            areas: who.areas.iter().cloned().collect(),
            keys: *keys,
            issued_ms: now_ms,
            expires_ms: now_ms.saturating_add(lifetime_ms),
            signature: [0; 64],
        };
        certificate.signature = self
            .signing
            .sign(&labelled(CERTIFICATE_LABEL, &certificate.body()))
            .to_bytes();
        certificate
    }

    /// The hub's signature over a certificate directory's digest: it vouches for every
    /// certificate of a list with that digest, so that a device receiving the directory checks
    /// one signature rather than one per certificate (`Trust::check_directory`).
    pub fn sign_directory(&self, digest: &[u8; 32]) -> [u8; 64] {
        self.signing
            .sign(&labelled(DIRECTORY_LABEL, digest))
            .to_bytes()
    }

    /// The order to wipe itself the hub gives `device`, revoked: its signature, in hex, which
    /// the device checks against the hub's key it pinned (`is_wipe_order`) before it destroys
    /// anything. Whatever answers in the hub's place (a network in clear, a server under its
    /// name) cannot make one.
    pub fn wipe_order(&self, device: Uuid) -> String {
        let signature = self
            .signing
            .sign(&labelled(WIPE_ORDER_LABEL, device.as_bytes()))
            .to_bytes();
        signature.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The signed list of revoked devices.
    pub fn revocations(&self, mut devices: Vec<Uuid>, now_ms: i64) -> Revocations {
        devices.sort();
        devices.dedup();
        let mut list = Revocations {
            issued_ms: now_ms,
            devices,
            signature: [0; 64],
        };
        list.signature = self
            .signing
            .sign(&labelled(REVOCATIONS_LABEL, &list.body()))
            .to_bytes();
        list
    }
}

fn labelled(label: &[u8], body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(label.len() + body.len());
    message.extend_from_slice(label);
    message.extend_from_slice(body);
    message
}

fn verify(
    key: &[u8; 32],
    message: &[u8],
    signature: &[u8; 64],
    what: &'static str,
) -> IdResult<()> {
    let key = VerifyingKey::from_bytes(key).map_err(|_| IdentityError::BadSignature { what })?;
    key.verify_strict(message, &Signature::from_bytes(signature))
        .map_err(|_| IdentityError::BadSignature { what })
}

/// Whether `order` is the wipe order of the hub whose keys are `hub` for `device`
/// (`HubKey::wipe_order`).
pub fn is_wipe_order(hub: &HubPublic, device: Uuid, order: &str) -> bool {
    let bytes: Option<Vec<u8>> = (order.len() == 128)
        .then(|| {
            (0..128)
                .step_by(2)
                .map(|i| u8::from_str_radix(order.get(i..i + 2)?, 16).ok())
                .collect()
        })
        .flatten();
    let Some(signature) = bytes.and_then(|b| <[u8; 64]>::try_from(b).ok()) else {
        return false;
    };
    verify(
        &hub.signing,
        &labelled(WIPE_ORDER_LABEL, device.as_bytes()),
        &signature,
        "wipe order",
    )
    .is_ok()
}

/// Verifies a signature made by a device key (handshakes, bundles).
pub(crate) fn verify_device(
    keys: &PublicKeys,
    message: &[u8],
    signature: &[u8; 64],
    what: &'static str,
) -> IdResult<()> {
    verify(&keys.signing, message, signature, what)
}

/// Reads fixed-size fields from the front of a byte slice.
struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> IdResult<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(IdentityError::Malformed { what: self.what });
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> IdResult<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    fn uuid(&mut self) -> IdResult<Uuid> {
        Ok(Uuid::from_bytes(self.array()?))
    }

    fn i64(&mut self) -> IdResult<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn end(&self) -> IdResult<()> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(IdentityError::Malformed { what: self.what })
        }
    }
}

/// The hub's statement that a device's keys belong to a device of a user with a role and
/// areas, until an expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// The issuing hub's Ed25519 public key.
    pub hub: [u8; 32],
    pub device: Uuid,
    pub user: Uuid,
    pub role: Role,
    /// Area codes, matched as the hub matches a user's (`Principal::scope`).
    pub areas: Vec<String>,
    pub keys: PublicKeys,
    pub issued_ms: i64,
    pub expires_ms: i64,
    pub signature: [u8; 64],
}

/// At most this many area codes, each at most 255 bytes, in a certificate.
const MAX_CERTIFICATE_AREAS: usize = 1024;

impl Certificate {
    /// Everything but the signature, as signed.
    fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(200);
        out.extend_from_slice(&CERTIFICATE_TAG);
        out.extend_from_slice(&self.hub);
        out.extend_from_slice(self.device.as_bytes());
        out.extend_from_slice(self.user.as_bytes());
        out.push(role_code(self.role));
        out.extend_from_slice(&self.keys.signing);
        out.extend_from_slice(&self.keys.agreement);
        out.extend_from_slice(&self.issued_ms.to_le_bytes());
        out.extend_from_slice(&self.expires_ms.to_le_bytes());
        let areas: Vec<&String> = self
            .areas
            .iter()
            .filter(|a| a.len() <= 255)
            .take(MAX_CERTIFICATE_AREAS)
            .collect();
        out.extend_from_slice(&(areas.len() as u16).to_le_bytes());
        for area in areas {
            out.push(area.len() as u8);
            out.extend_from_slice(area.as_bytes());
        }
        out
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.body();
        out.extend_from_slice(&self.signature);
        out
    }

    /// Decodes a certificate without trusting it (`Trust::check` does).
    pub fn from_bytes(bytes: &[u8]) -> IdResult<Certificate> {
        let what = "certificate";
        let mut r = Reader { bytes, what };
        if r.array::<4>()? != CERTIFICATE_TAG {
            return Err(if bytes.starts_with(b"VGc") {
                IdentityError::UnsupportedVersion { what }
            } else {
                IdentityError::Malformed { what }
            });
        }
        let hub = r.array()?;
        let device = r.uuid()?;
        let user = r.uuid()?;
        let role = role_of(r.array::<1>()?[0]).ok_or(IdentityError::Malformed { what })?;
        let keys = PublicKeys {
            signing: r.array()?,
            agreement: r.array()?,
        };
        let issued_ms = r.i64()?;
        let expires_ms = r.i64()?;
        let count = u16::from_le_bytes(r.array()?) as usize;
        if count > MAX_CERTIFICATE_AREAS {
            return Err(IdentityError::Malformed { what });
        }
        let mut areas = Vec::with_capacity(count);
        for _ in 0..count {
            let len = r.array::<1>()?[0] as usize;
            let code =
                std::str::from_utf8(r.take(len)?).map_err(|_| IdentityError::Malformed { what })?;
            areas.push(code.to_string());
        }
        let signature = r.array()?;
        r.end()?;
        Ok(Certificate {
            hub,
            device,
            user,
            role,
            areas,
            keys,
            issued_ms,
            expires_ms,
            signature,
        })
    }

    /// The principal the certificate describes: what its holder may receive is what the hub
    /// would send it (`Principal::scope`).
    pub fn principal(&self) -> Principal {
        Principal {
            device: self.device,
            user: self.user,
            role: self.role,
            areas: self.areas.iter().cloned().collect(),
        }
    }

    /// Whether it says what `who` and `keys` say (else the hub issues a new one).
    pub fn describes(&self, who: &Principal, keys: &PublicKeys) -> bool {
        self.device == who.device
            && self.user == who.user
            && self.role == who.role
            && self.areas.iter().cloned().collect::<BTreeSet<_>>() == who.areas
            && self.keys == *keys
    }

    /// Whether the hub should issue a new one before this one runs out: once less than three
    /// quarters of a certificate's lifetime are left (a quarter of it gone; a renewal changes
    /// the directory every peer receives: not at every sync). Counted from the lifetime now, not
    /// this one's: one of the previous version's 30 days is renewed at its first sync.
    pub fn is_due_for_renewal(&self, now_ms: i64) -> bool {
        now_ms >= self.expires_ms - CERTIFICATE_LIFETIME_MS / 4 * 3
    }
}

/// A role in a certificate: its position in `Role::ALL` (the order its codes are declared in,
/// which never changes) plus one.
fn role_code(role: Role) -> u8 {
    let position = Role::ALL.iter().position(|r| *r == role).unwrap_or(0);
    u8::try_from(position + 1).unwrap_or(0)
}

fn role_of(code: u8) -> Option<Role> {
    Role::ALL.get(usize::from(code).checked_sub(1)?).copied()
}

/// The hub's signed list of revoked devices, whole (it replaces the previous one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocations {
    pub issued_ms: i64,
    pub devices: Vec<Uuid>,
    pub signature: [u8; 64],
}

/// At most this many revoked devices in one list.
const MAX_REVOCATIONS: usize = 1 << 20;

impl Revocations {
    fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + 16 * self.devices.len());
        out.extend_from_slice(&REVOCATIONS_TAG);
        out.extend_from_slice(&self.issued_ms.to_le_bytes());
        out.extend_from_slice(&(self.devices.len() as u32).to_le_bytes());
        for device in &self.devices {
            out.extend_from_slice(device.as_bytes());
        }
        out
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.body();
        out.extend_from_slice(&self.signature);
        out
    }

    /// Decodes a list and checks it is signed by `hub`.
    pub fn verified(bytes: &[u8], hub: &[u8; 32]) -> IdResult<Revocations> {
        let what = "revocation list";
        let mut r = Reader { bytes, what };
        if r.array::<4>()? != REVOCATIONS_TAG {
            return Err(IdentityError::Malformed { what });
        }
        let issued_ms = r.i64()?;
        let count = u32::from_le_bytes(r.array()?) as usize;
        if count > MAX_REVOCATIONS || r.bytes.len() != count * 16 + 64 {
            return Err(IdentityError::Malformed { what });
        }
        let devices = (0..count).map(|_| r.uuid()).collect::<IdResult<Vec<_>>>()?;
        let signature = r.array()?;
        r.end()?;
        let list = Revocations {
            issued_ms,
            devices,
            signature,
        };
        verify(
            hub,
            &labelled(REVOCATIONS_LABEL, &list.body()),
            &signature,
            what,
        )?;
        Ok(list)
    }
}

/// What a device trusts: the hub key it pinned, the revocation list it last received, and the
/// time. Every certificate from a peer or in a bundle passes `check`.
#[derive(Debug, Clone)]
pub struct Trust {
    pub hub: [u8; 32],
    pub revoked: BTreeSet<Uuid>,
    /// The newest certificate the directory holds for each device: one issued before it that
    /// says something else (user, role, areas, keys) is superseded (the hub certifies a user's
    /// devices again when their role or areas change, or the user is deactivated, and a phone
    /// that stays away from the hub must not keep what it had with its peers). A routine
    /// renewal says the same: a bundle sealed before it, carried for days, still opens.
    pub newest: BTreeMap<Uuid, Certificate>,
    pub now_ms: i64,
}

impl Trust {
    /// Decodes a certificate and checks, in this order: the issuing hub is the pinned one, its
    /// signature, the revocation list, the expiry.
    pub fn check(&self, bytes: &[u8]) -> IdResult<Certificate> {
        let certificate = Certificate::from_bytes(bytes)?;
        self.check_certificate(&certificate)?;
        Ok(certificate)
    }

    pub fn check_certificate(&self, certificate: &Certificate) -> IdResult<()> {
        self.check_issuer(certificate)?;
        if self.revoked.contains(&certificate.device) {
            return Err(IdentityError::Revoked {
                device: certificate.device,
            });
        }
        // Only the expiry counts: a certificate dated after this device's now was issued by a
        // hub whose clock ran ahead (its renewals stay dated after it, to supersede it), or is
        // read by a device whose clock runs behind; refusing it kept honest phones from each
        // other for as many days as the clock was wrong.
        if self.now_ms >= certificate.expires_ms {
            return Err(IdentityError::Expired {
                device: certificate.device,
            });
        }
        if self.newest.get(&certificate.device).is_some_and(|newest| {
            certificate.issued_ms < newest.issued_ms
                && !newest.describes(&certificate.principal(), &certificate.keys)
        }) {
            return Err(IdentityError::Superseded {
                device: certificate.device,
            });
        }
        Ok(())
    }

    /// Checks that the pinned hub signed a directory's digest (`HubKey::sign_directory`).
    pub fn check_directory(&self, digest: &[u8; 32], signature: &[u8; 64]) -> IdResult<()> {
        verify(
            &self.hub,
            &labelled(DIRECTORY_LABEL, digest),
            signature,
            "certificate directory",
        )
    }

    /// Checks that the pinned hub issued and signed `certificate`, and nothing about the time
    /// or the revocation list: what a certificate keeps true for as long as it exists.
    pub fn check_issuer(&self, certificate: &Certificate) -> IdResult<()> {
        if certificate.hub != self.hub {
            return Err(IdentityError::UnknownHub);
        }
        verify(
            &self.hub,
            &labelled(CERTIFICATE_LABEL, &certificate.body()),
            &certificate.signature,
            "certificate",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal() -> Principal {
        Principal {
            device: Uuid::new_v4(),
            user: Uuid::new_v4(),
            role: Role::CommunityMonitor,
            areas: ["CI-BAS".to_string()].into_iter().collect(),
        }
    }

    #[test]
    fn certificates_keep_the_role_bytes_of_their_format() {
        // ARCHITECTURE.md: 1 inspector, 2 community monitor, 3 supervisor, 4 administrator.
        let bytes = [
            (Role::Inspector, 1),
            (Role::CommunityMonitor, 2),
            (Role::Supervisor, 3),
            (Role::Administrator, 4),
        ];
        for (role, byte) in bytes {
            assert_eq!(role_code(role), byte);
            assert_eq!(role_of(byte), Some(role));
        }
        assert_eq!((role_of(0), role_of(5)), (None, None));
    }

    #[test]
    fn a_certificate_is_renewed_once_a_quarter_of_the_lifetime_has_gone() {
        let hub = HubKey::generate();
        let keys = DeviceKeys::generate();
        let day = 24 * 3600 * 1000;
        let cert = hub.certify(&principal(), &keys.public(), 1_000);
        assert!(!cert.is_due_for_renewal(1_000 + 14 * day));
        assert!(cert.is_due_for_renewal(1_000 + 15 * day));
        // One of the previous version's 30 days: renewed at its first sync, so that a phone
        // keeps 45 days of exchanges from then.
        let mut shorter = cert.clone();
        shorter.expires_ms = shorter.issued_ms + 30 * day;
        assert!(shorter.is_due_for_renewal(1_000));
    }

    #[test]
    fn a_certificate_round_trips_and_verifies_only_unaltered() {
        let hub = HubKey::generate();
        let keys = DeviceKeys::generate();
        let who = principal();
        let cert = hub.certify(&who, &keys.public(), 1_000);
        let bytes = cert.to_bytes();
        let trust = Trust {
            hub: hub.public().signing,
            revoked: BTreeSet::new(),
            newest: BTreeMap::new(),
            now_ms: 2_000,
        };
        assert_eq!(trust.check(&bytes).unwrap(), cert);
        assert!(cert.describes(&who, &keys.public()));
        for i in 0..bytes.len() {
            let mut altered = bytes.clone();
            altered[i] ^= 1;
            assert!(trust.check(&altered).is_err(), "byte {i}");
        }
        let other = Trust {
            hub: HubKey::generate().public().signing,
            ..trust.clone()
        };
        assert_eq!(other.check(&bytes), Err(IdentityError::UnknownHub));
        let late = Trust {
            now_ms: cert.expires_ms,
            ..trust.clone()
        };
        assert!(matches!(
            late.check(&bytes),
            Err(IdentityError::Expired { .. })
        ));
        // Dated a week after this device's now (the hub's clock ran ahead, or this device's
        // runs behind): taken, until it expires.
        let early = Trust {
            now_ms: cert.issued_ms - 7 * 24 * 3600 * 1000,
            ..trust.clone()
        };
        assert_eq!(early.check(&bytes).unwrap(), cert);
        let revoked = Trust {
            revoked: [who.device].into_iter().collect(),
            ..trust.clone()
        };
        assert!(matches!(
            revoked.check(&bytes),
            Err(IdentityError::Revoked { .. })
        ));
        // A newer one for other areas supersedes it; a renewal saying the same does not (a
        // file sealed before it opens).
        let mut moved = who.clone();
        moved.areas = ["CI-R2".to_string()].into_iter().collect();
        let superseded = Trust {
            newest: [(who.device, hub.certify(&moved, &keys.public(), 1_001))]
                .into_iter()
                .collect(),
            ..trust.clone()
        };
        assert!(matches!(
            superseded.check(&bytes),
            Err(IdentityError::Superseded { .. })
        ));
        let renewed = Trust {
            newest: [(who.device, hub.certify(&who, &keys.public(), 1_001))]
                .into_iter()
                .collect(),
            ..trust.clone()
        };
        assert_eq!(renewed.check(&bytes).unwrap(), cert);
        let current = Trust {
            newest: [(who.device, cert.clone())].into_iter().collect(),
            ..trust
        };
        assert_eq!(current.check(&bytes).unwrap(), cert);
    }

    #[test]
    fn revocation_lists_and_keys_round_trip() {
        let hub = HubKey::generate();
        let list = hub.revocations(vec![Uuid::new_v4(), Uuid::new_v4()], 5);
        let bytes = list.to_bytes();
        assert_eq!(
            Revocations::verified(&bytes, &hub.public().signing).unwrap(),
            list
        );
        let mut altered = bytes.clone();
        altered[10] ^= 1;
        assert!(Revocations::verified(&altered, &hub.public().signing).is_err());
        let keys = DeviceKeys::generate();
        let again = DeviceKeys::from_bytes(&keys.to_bytes()).unwrap();
        assert_eq!(again.public(), keys.public());
        let hub_again = HubKey::from_bytes(&*hub.to_bytes()).unwrap();
        assert_eq!(hub_again.public(), hub.public());
    }

    /// A wipe order checks against its hub's key for its device only: not another hub's, not
    /// another device's, and nothing that is not one.
    #[test]
    fn a_wipe_order_is_its_hubs_for_its_device_only() {
        let (hub, other_hub) = (HubKey::generate(), HubKey::generate());
        let (device, other_device) = (Uuid::new_v4(), Uuid::new_v4());
        let order = hub.wipe_order(device);
        assert!(is_wipe_order(&hub.public(), device, &order));
        assert!(!is_wipe_order(&other_hub.public(), device, &order));
        assert!(!is_wipe_order(&hub.public(), other_device, &order));
        assert!(!is_wipe_order(
            &hub.public(),
            device,
            &other_hub.wipe_order(device)
        ));
        for forged in [
            "",
            "00",
            &"0".repeat(128),
            &order[..126],
            &format!("{order}00"),
        ] {
            assert!(!is_wipe_order(&hub.public(), device, forged), "{forged}");
        }
        // One character changed is no order.
        let mut flipped = order.clone().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        assert!(!is_wipe_order(
            &hub.public(),
            device,
            std::str::from_utf8(&flipped).unwrap()
        ));
    }
}

//! Device identity over sync: the hub certifies each device's keys and hands out its key, the
//! revocation list and the directory of certificates (`hub_identity`); a device checks and
//! keeps them (`apply_identity`). The formats are in `crate::identity`.

use super::hub::HubError;
use super::wire::{Directory, IdentityUpdate, RequestIdentity};
use crate::domain::rights::Principal;
use crate::error::Result;
use crate::identity::{Certificate, HubKey, HubPublic, IdentityError, Revocations, Trust};
use crate::store::identity as kept;
use rusqlite::Transaction;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The hub's registry of devices as identity needs it (the embedded registry and PostgreSQL
/// implement it in the server).
pub trait DeviceRegistry {
    /// Every enrolled device that holds a certificate or is revoked, read at once (one query:
    /// this runs at the start of every sync session).
    fn devices(&self) -> Result<Vec<RegisteredDevice>>;
    /// Keeps the certificate just issued to a device.
    fn keep_certificate(&self, device: Uuid, certificate: &[u8]) -> Result<()>;
}

/// An enrolled device as identity sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredDevice {
    pub device: Uuid,
    /// The certificate last issued to it.
    pub certificate: Option<Vec<u8>>,
    pub revoked: bool,
}

/// The hub's side: its key and its registry.
pub struct Certifier<'a> {
    pub key: &'a HubKey,
    pub registry: &'a dyn DeviceRegistry,
}

/// What the hub answers a device presenting `request`: its certificate (issued anew when none
/// was, when the user's role or areas changed, or when half of it has run), the revocation
/// list and, when the device's copy differs, the directory. A device's keys are bound at their
/// first presentation: other keys later are refused (enrol a new device).
///
/// `None` when the device already holds exactly that (`RequestIdentity::held`).
pub fn hub_identity(
    certifier: &Certifier<'_>,
    who: &Principal,
    request: &RequestIdentity,
    now_ms: i64,
) -> std::result::Result<Option<IdentityUpdate>, HubError> {
    let registry = certifier.registry;
    let devices = registry.devices()?;
    let stored = devices
        .iter()
        .find(|d| d.device == who.device)
        .and_then(|d| d.certificate.as_deref())
        .and_then(|bytes| Certificate::from_bytes(bytes).ok())
        .filter(|c| c.hub == certifier.key.public().signing);
    if let Some(stored) = &stored
        && stored.keys != request.keys
    {
        return Err(HubError::KeysNotBound);
    }
    let certificate = match stored {
        Some(c) if c.describes(who, &request.keys) && !c.is_due_for_renewal(now_ms) => c,
        _ => {
            let issued = certifier.key.certify(who, &request.keys, now_ms);
            registry.keep_certificate(who.device, &issued.to_bytes())?;
            issued
        }
    };
    let hub = certifier.key.public();
    let revoked = devices
        .iter()
        .filter(|d| d.revoked)
        .map(|d| d.device)
        .collect();
    let revocations = certifier.key.revocations(revoked, now_ms);
    let mut others: Vec<Vec<u8>> = devices
        .into_iter()
        .filter(|d| !d.revoked && d.device != who.device)
        .filter_map(|d| d.certificate)
        .filter(|bytes| Certificate::from_bytes(bytes).is_ok_and(|c| c.expires_ms > now_ms))
        .collect();
    others.sort();
    let digest = directory_digest(&others);
    let certificate = certificate.to_bytes();
    if request.held
        == Some(held_digest(
            &hub,
            &certificate,
            &revocations.devices,
            &digest,
        ))
    {
        return Ok(None);
    }
    let directory = (request.directory != Some(digest)).then_some(Directory {
        digest,
        certificates: others,
    });
    Ok(Some(IdentityUpdate {
        hub,
        certificate,
        revocations: revocations.to_bytes(),
        directory,
    }))
}

/// What a device holds from the hub, as one digest: the hub's keys, its certificate, the
/// revoked devices and the directory's digest.
fn held_digest(
    hub: &HubPublic,
    certificate: &[u8],
    revoked: &[Uuid],
    directory: &[u8; 32],
) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"vigie identity held v1\0");
    hash.update(hub.signing);
    hash.update(hub.agreement);
    hash.update((certificate.len() as u32).to_le_bytes());
    hash.update(certificate);
    hash.update((revoked.len() as u32).to_le_bytes());
    for device in revoked {
        hash.update(device.as_bytes());
    }
    hash.update(directory);
    hash.finalize().into()
}

fn directory_digest(certificates: &[Vec<u8>]) -> [u8; 32] {
    let mut hash = Sha256::new();
    for certificate in certificates {
        hash.update((certificate.len() as u32).to_le_bytes());
        hash.update(certificate);
    }
    hash.finalize().into()
}

/// What a device presents with a request (none for a store without keys: a hub's).
pub(crate) fn request_identity(conn: &rusqlite::Connection) -> Result<Option<RequestIdentity>> {
    let Some(keys) = kept::device_keys(conn)? else {
        return Ok(None);
    };
    Ok(Some(RequestIdentity {
        keys: keys.public(),
        directory: kept::directory_digest(conn)?,
        held: kept::held_digest(conn)?,
    }))
}

/// Checks and keeps what the hub answered, in the transaction that applies its response. The
/// hub's keys are pinned the first time; a response signed by another key is refused whole.
pub(crate) fn apply_identity(
    tx: &Transaction,
    device: Uuid,
    update: &IdentityUpdate,
) -> Result<()> {
    let Some(keys) = kept::device_keys(tx)? else {
        return Ok(());
    };
    match kept::pinned_hub(tx)? {
        Some(pinned) if pinned != update.hub => {
            return Err(IdentityError::HubKeyChanged.into());
        }
        Some(_) => {}
        None => kept::pin_hub(tx, &update.hub)?,
    }
    let revocations = Revocations::verified(&update.revocations, &update.hub.signing)?;
    let trust = Trust {
        hub: update.hub.signing,
        revoked: revocations.devices.iter().copied().collect(),
        now_ms: chrono::Utc::now().timestamp_millis(),
    };
    let certificate = Certificate::from_bytes(&update.certificate)?;
    if certificate.device != device || certificate.keys != keys.public() {
        return Err(IdentityError::NotOurKeys.into());
    }
    // Its own certificate is checked for the hub's signature only: a device whose clock is off
    // still keeps what the hub issued (its peers judge the expiry by theirs).
    let signed_only = Trust {
        now_ms: certificate.issued_ms,
        revoked: Default::default(),
        ..trust.clone()
    };
    signed_only.check_certificate(&certificate)?;
    let newer = match kept::revocations_bytes(tx)? {
        Some(bytes) => Revocations::verified(&bytes, &update.hub.signing)
            .map_or(true, |old| old.issued_ms <= revocations.issued_ms),
        None => true,
    };
    if newer {
        kept::set_revocations(tx, &update.revocations)?;
    }
    kept::set_certificate(tx, &certificate)?;
    if let Some(directory) = &update.directory {
        if directory_digest(&directory.certificates) != directory.digest {
            return Err(IdentityError::Malformed {
                what: "certificate directory",
            }
            .into());
        }
        // Certificates that do not check (expired by this clock, revoked) are left out.
        let checked: Vec<Certificate> = directory
            .certificates
            .iter()
            .filter_map(|bytes| trust.check(bytes).ok())
            .collect();
        kept::set_directory(tx, &checked, &directory.digest)?;
    }
    // What the hub would send again: the next request says it is held.
    let kept_revocations = match kept::revocations_bytes(tx)? {
        Some(bytes) => Revocations::verified(&bytes, &update.hub.signing)?.devices,
        None => Vec::new(),
    };
    if let Some(directory) = kept::directory_digest(tx)? {
        kept::set_held_digest(
            tx,
            &held_digest(
                &update.hub,
                &update.certificate,
                &kept_revocations,
                &directory,
            ),
        )?;
    }
    Ok(())
}

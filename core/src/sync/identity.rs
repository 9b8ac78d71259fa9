//! Device identity over sync: the hub certifies each device's keys and hands out its key, the
//! revocation list and the directory of certificates (`hub_identity`); a device checks and
//! keeps them (`apply_identity`). The formats are in `crate::identity`.

use super::hub::HubError;
use super::wire::{Directory, IdentityUpdate, RequestIdentity};
use crate::domain::codes::Role;
use crate::domain::rights::Principal;
use crate::error::Result;
use crate::identity::{
    CERTIFICATE_LIFETIME_MS, Certificate, HubKey, HubPublic, IdentityError, Revocations, Trust,
};
use crate::store::identity as kept;
use rusqlite::Transaction;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use uuid::Uuid;

/// The hub's registry of devices as identity needs it (the embedded registry and PostgreSQL
/// implement it in the server).
pub trait DeviceRegistry {
    /// Every enrolled device that holds a certificate or is revoked, read at once (one query:
    /// this runs at the start of every sync session).
    fn devices(&self) -> Result<Vec<RegisteredDevice>>;
    /// Keeps the certificate just issued to a device in place of `replacing`, the one
    /// `devices` gave for it (none if none): false, and nothing kept, if the device holds
    /// another since (a second store presenting the same token at the same time, through
    /// another worker or hub process, or another request renewing it).
    fn keep_certificate(
        &self,
        device: Uuid,
        certificate: &[u8],
        replacing: Option<&[u8]>,
    ) -> Result<bool>;
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

/// The lifetime of the certificates earlier versions of the hub issued.
const EARLIER_LIFETIME_MS: i64 = 30 * 24 * 3600 * 1000;

/// What the hub answers a device presenting `request`: its certificate (issued anew when none
/// was, when the user's role or areas changed, or when less than 45 of its days are left), the revocation
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
    let read = devices
        .iter()
        .find(|d| d.device == who.device)
        .and_then(|d| d.certificate.clone());
    let ours = |bytes: &[u8]| {
        Certificate::from_bytes(bytes)
            .ok()
            .filter(|c| c.hub == certifier.key.public().signing)
    };
    // A reissued device's certificate names keys no store holds (`supersede_reissued`): the
    // store made with the new token binds its own.
    let stored = read
        .as_deref()
        .and_then(ours)
        .filter(|c| c.keys != certifier.key.unbound_keys(who.device));
    if let Some(stored) = &stored
        && stored.keys != request.keys
    {
        return Err(HubError::KeysNotBound);
    }
    if request.user.is_some_and(|user| user != who.user) {
        return Err(HubError::UserNotBound);
    }
    let certificate = match stored {
        Some(c) if c.describes(who, &request.keys) && !c.is_due_for_renewal(now_ms) => c,
        _ => {
            let issued = certifier.key.certify(who, &request.keys, now_ms);
            if registry.keep_certificate(who.device, &issued.to_bytes(), read.as_deref())? {
                issued
            } else {
                // Another request bound the device meanwhile: a token serves one store, the
                // one whose keys it holds now (the same store's other request goes on).
                let now = registry
                    .devices()?
                    .into_iter()
                    .find(|d| d.device == who.device)
                    .and_then(|d| d.certificate)
                    .and_then(|bytes| ours(&bytes));
                match now {
                    Some(held) if held.keys == request.keys => held,
                    _ => return Err(HubError::KeysNotBound),
                }
            }
        }
    };
    let hub = certifier.key.public();
    let revoked = devices
        .iter()
        .filter(|d| d.revoked)
        .map(|d| d.device)
        .collect();
    let revocations = certifier.key.revocations(revoked, now_ms);
    // The directory: (certificate, when it was issued), in the order of the bytes.
    let mut others: Vec<(Vec<u8>, i64)> = Vec::new();
    for device in devices
        .into_iter()
        .filter(|d| !d.revoked && d.device != who.device)
    {
        let Some(mut bytes) = device.certificate else {
            continue;
        };
        let Ok(mut certificate) = Certificate::from_bytes(&bytes) else {
            continue;
        };
        // One an earlier version issued for 30 days runs as long as one issued that day now
        // would, saying the same: re-issued once, dated now (the directories' updates carry
        // what was issued since they were last listed), to expire 60 days after the first.
        if certificate.hub == hub.signing
            && certificate.expires_ms - certificate.issued_ms <= EARLIER_LIFETIME_MS
            && certificate.expires_ms > now_ms
        {
            let expires_ms = certificate.issued_ms + CERTIFICATE_LIFETIME_MS;
            let issued_ms = now_ms.max(certificate.issued_ms + 1);
            let longer = certifier.key.certify_lasting(
                &certificate.principal(),
                &certificate.keys,
                issued_ms,
                expires_ms - issued_ms,
            );
            let longer_bytes = longer.to_bytes();
            if registry.keep_certificate(device.device, &longer_bytes, Some(&bytes))? {
                (certificate, bytes) = (longer, longer_bytes);
            }
        }
        if certificate.expires_ms > now_ms {
            others.push((bytes, certificate.issued_ms));
        }
    }
    others.sort();
    let digest = directory_digest(others.iter().map(|(bytes, _)| bytes.as_slice()));
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
    // A device holding an earlier directory gets the certificates issued since it; it works
    // out which left (revoked, expired) and checks the result against the digest.
    let since = request.directory.and(request.directory_issued_through);
    let directory = (request.directory != Some(digest)).then(|| Directory {
        digest,
        certificates: others
            .into_iter()
            .filter(|(_, issued_ms)| since.is_none_or(|since| *issued_ms > since))
            .map(|(bytes, _)| bytes)
            .collect(),
        signature: Some(certifier.key.sign_directory(&digest)),
    });
    Ok(Some(IdentityUpdate {
        hub,
        certificate,
        revocations: revocations.to_bytes(),
        directory,
    }))
}

/// Whether the hub's list `new` replaces the `held` one. Devices are revoked for good: a list
/// that revokes one the held list does not is the newer, whatever its date says (a hub whose
/// clock ran days ahead, then was set right, dates its lists before the ones it sent
/// meanwhile, and its devices heard of no revocation until the clock caught up).
fn supersedes(new: &Revocations, held: &Revocations) -> bool {
    held.issued_ms <= new.issued_ms || new.devices.iter().any(|d| !held.devices.contains(d))
}

/// Certifies again, at once, the devices of a user whose role or areas changed or who was
/// deactivated (`role` and `areas` as the user's devices now sync: no areas once deactivated).
/// The directory the other devices receive at their next sync then supersedes what these
/// devices hold (`Trust::newest`): a phone kept away from the hub loses with its peers what
/// its user lost with the hub. Returns how many were certified.
pub fn recertify_user(
    certifier: &Certifier<'_>,
    user: Uuid,
    role: Role,
    areas: &BTreeSet<String>,
    now_ms: i64,
) -> Result<usize> {
    let hub = certifier.key.public().signing;
    let mut certified = 0;
    for registered in certifier.registry.devices()? {
        let held = registered
            .certificate
            .as_deref()
            .and_then(|bytes| Certificate::from_bytes(bytes).ok());
        let Some(held) = held.filter(|c| !registered.revoked && c.user == user && c.hub == hub)
        else {
            continue;
        };
        let who = Principal {
            device: registered.device,
            user,
            role,
            areas: areas.clone(),
        };
        if held.describes(&who, &held.keys) {
            continue;
        }
        // Strictly after the one it replaces, whatever the clock says.
        let issued = certifier
            .key
            .certify(&who, &held.keys, now_ms.max(held.issued_ms + 1));
        // Renewed meanwhile by the device's own sync: that one stands.
        if certifier.registry.keep_certificate(
            registered.device,
            &issued.to_bytes(),
            registered.certificate.as_deref(),
        )? {
            certified += 1;
        }
    }
    Ok(certified)
}

/// After `device`'s token was reissued (its keys unbound in the registry): a certificate for
/// what `held` (the one its old store holds) says, naming keys no store holds
/// (`HubKey::unbound_keys`), so that the peers it meets refuse the old store from their next
/// sync (`Trust::newest`) rather than until its certificate expires, 60 days on, or until the
/// store made with the new token syncs. False when the device held none of this hub's (no
/// peer knows it) or bound new keys meanwhile.
pub fn supersede_reissued(
    certifier: &Certifier<'_>,
    device: Uuid,
    held: &[u8],
    now_ms: i64,
) -> Result<bool> {
    let Ok(held) = Certificate::from_bytes(held) else {
        return Ok(false);
    };
    if held.hub != certifier.key.public().signing {
        return Ok(false);
    }
    let unbound = certifier.key.certify(
        &held.principal(),
        &certifier.key.unbound_keys(device),
        now_ms.max(held.issued_ms + 1),
    );
    certifier
        .registry
        .keep_certificate(device, &unbound.to_bytes(), None)
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

/// The digest of a directory, its certificates in the order of their bytes.
fn directory_digest<'a>(certificates: impl IntoIterator<Item = &'a [u8]>) -> [u8; 32] {
    let mut hash = Sha256::new();
    for certificate in certificates {
        hash.update((certificate.len() as u32).to_le_bytes());
        hash.update(certificate);
    }
    hash.finalize().into()
}

/// Keeps the directory the hub sent: all of it, or (to a device that said when its copy was
/// issued up to) the certificates issued since. The kept copy is brought up to date: revoked
/// devices and certificates expired by the hub's clock (the time of its revocation list)
/// leave it, and a device's newer certificate replaces its older one. If the result is not
/// what the hub's digest says (a device removed from the hub, a clock set back), it is kept
/// for what it is worth, and the next request asks for the whole directory.
///
/// Certificates are kept as the hub sent them. When the hub signed the digest and the result
/// matches it, that one signature vouches for them all; otherwise each certificate the device
/// did not already hold is verified, and those whose signature does not check are left out.
/// (A directory of a region's devices is hundreds of certificates, and a signature each was
/// most of a device's work in a sync that brought them.) Whoever relies on a kept certificate
/// checks it again (`Store::directory`).
fn keep_directory(
    tx: &Transaction,
    trust: &Trust,
    hub_now_ms: i64,
    directory: &Directory,
) -> Result<()> {
    let held = kept::directory_rows(tx)?;
    let held_bytes: HashSet<&[u8]> = held.values().map(Vec::as_slice).collect();
    let mut still_held: BTreeMap<Uuid, (Certificate, &[u8])> = BTreeMap::new();
    for bytes in held.values() {
        if let Ok(certificate) = Certificate::from_bytes(bytes)
            && !trust.revoked.contains(&certificate.device)
            && certificate.expires_ms > hub_now_ms
        {
            still_held.insert(certificate.device, (certificate, bytes));
        }
    }
    let sent: Vec<(Certificate, &[u8])> = directory
        .certificates
        .iter()
        .filter_map(|bytes| Some((Certificate::from_bytes(bytes).ok()?, bytes.as_slice())))
        .filter(|(certificate, _)| certificate.hub == trust.hub)
        .collect();
    let vouched = directory
        .signature
        .is_some_and(|signature| trust.check_directory(&directory.digest, &signature).is_ok());
    let listed = |certificates: &[(Certificate, &[u8])]| {
        directory_digest(certificates.iter().map(|(_, bytes)| *bytes)) == directory.digest
    };
    // What the device holds with the accepted certificates: brought up to date, and the list
    // as sent (a hub of the version before sends the whole directory even when asked for what
    // is newer: then the list itself matches the digest).
    let assemble = |accepted: &mut dyn FnMut(&Certificate, &[u8]) -> bool| {
        let mut by_device = still_held.clone();
        let mut whole: Vec<(Certificate, &[u8])> = Vec::new();
        for (certificate, bytes) in &sent {
            if accepted(certificate, bytes) {
                whole.push((certificate.clone(), bytes));
                by_device.insert(certificate.device, (certificate.clone(), bytes));
            }
        }
        let mut updated: Vec<(Certificate, &[u8])> = by_device.into_values().collect();
        updated.sort_by_key(|(_, bytes)| *bytes);
        whole.sort_by_key(|(_, bytes)| *bytes);
        (updated, whole)
    };
    let matching = |(updated, whole): (Vec<_>, Vec<_>)| {
        if listed(&updated) {
            Ok(updated)
        } else if listed(&whole) {
            Ok(whole)
        } else {
            Err(updated)
        }
    };
    let outcome = match vouched.then(|| matching(assemble(&mut |_, _| true))) {
        Some(Ok(kept)) => Ok(kept),
        _ => matching(assemble(&mut |certificate, bytes| {
            held_bytes.contains(bytes) || trust.check_issuer(certificate).is_ok()
        })),
    };
    let (kept, matches) = match outcome {
        Ok(kept) => (kept, true),
        Err(updated) => (updated, false),
    };
    let issued_through = kept.iter().map(|(c, _)| c.issued_ms).max().unwrap_or(0);
    kept::set_directory(
        tx,
        &held,
        &kept,
        matches.then_some((directory.digest, issued_through)),
    )
}

/// What a device presents with a request (none for a store without keys: a hub's).
pub(crate) fn request_identity(conn: &rusqlite::Connection) -> Result<Option<RequestIdentity>> {
    let Some(keys) = kept::device_keys(conn)? else {
        return Ok(None);
    };
    // Until the hub certified this device: the user the store was opened for.
    let user = match kept::certified(conn)? {
        true => None,
        false => crate::store::sync_state::get_meta(conn, "user_id")?
            .and_then(|b| uuid::Uuid::from_slice(&b).ok()),
    };
    Ok(Some(RequestIdentity {
        keys: keys.public(),
        directory: kept::directory_digest(conn)?,
        held: kept::held_digest(conn)?,
        directory_issued_through: kept::directory_issued_through(conn)?,
        user,
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
        // The directory received is the newest; what it replaces is not judged by the old.
        newest: Default::default(),
        now_ms: chrono::Utc::now().timestamp_millis(),
    };
    let certificate = Certificate::from_bytes(&update.certificate)?;
    if certificate.device != device || certificate.keys != keys.public() {
        return Err(IdentityError::NotOurKeys.into());
    }
    // Its own certificate is checked for the hub's signature only: a device whose clock is off
    // still keeps what the hub issued (its peers judge the expiry by theirs).
    trust.check_issuer(&certificate)?;
    let newer = match kept::revocations_bytes(tx)? {
        Some(bytes) => Revocations::verified(&bytes, &update.hub.signing)
            .map_or(true, |old| supersedes(&revocations, &old)),
        None => true,
    };
    if newer {
        kept::set_revocations(tx, &update.revocations)?;
    }
    kept::set_certificate(tx, &certificate)?;
    if let Some(directory) = &update.directory {
        keep_directory(tx, &trust, revocations.issued_ms, directory)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_that_revokes_another_device_supersedes_whatever_its_date() {
        let key = HubKey::generate();
        let (one, two) = (Uuid::now_v7(), Uuid::now_v7());
        // Sent while the hub's clock ran six days ahead.
        let ahead = key.revocations(vec![one], 1_000_000 + 6 * 86_400_000);
        // After the clock was set right: one more device revoked, an earlier date.
        let later = key.revocations(vec![one, two], 1_000_000);
        assert!(supersedes(&later, &ahead));
        // The same devices, dated earlier: an older list, kept out.
        let older = key.revocations(vec![one], 1_000_000);
        assert!(!supersedes(&older, &ahead));
        assert!(supersedes(&ahead, &older));
    }
}

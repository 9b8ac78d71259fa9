//! What a device keeps of its identity (`crate::identity`), all in its encrypted file: its
//! secret keys, the hub keys it pinned at its first sync, its certificate, the hub's revocation
//! list and the directory of other devices' certificates. `sync::client` decides what to keep.

use super::sync_state::{get_meta, set_meta};
use super::{Store, queries};
use crate::domain::rights::Scope;
use crate::error::{Error, Result};
use crate::identity::{
    Certificate, DeviceKeys, HubKey, HubPublic, IdentityError, PublicKeys, Revocations, Trust,
};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::collections::{BTreeMap, HashMap, HashSet};
use uuid::Uuid;

const KEYS: &str = "device_keys";
const HUB: &str = "hub_keys";
const CERTIFICATE: &str = "certificate";
const REVOCATIONS: &str = "revocations";
const DIRECTORY_DIGEST: &str = "directory_digest";
const DIRECTORY_ISSUED_THROUGH: &str = "directory_issued_through";
const HELD_DIGEST: &str = "identity_held_digest";
/// A hub's own signing key (embedded hub): in its store, encrypted with it.
const HUB_SIGNING: &str = "hub_signing_key";

/// Makes the device's keys if it has none.
pub(crate) fn ensure_device_keys(tx: &Transaction) -> Result<()> {
    if get_meta(tx, KEYS)?.is_none() {
        set_meta(tx, KEYS, &DeviceKeys::generate().to_bytes())?;
    }
    Ok(())
}

pub(crate) fn device_keys(conn: &Connection) -> Result<Option<DeviceKeys>> {
    get_meta(conn, KEYS)?
        .map(|bytes| DeviceKeys::from_bytes(&bytes).map_err(Error::from))
        .transpose()
}

pub(crate) fn pinned_hub(conn: &Connection) -> Result<Option<HubPublic>> {
    Ok(get_meta(conn, HUB)?.and_then(|b| postcard::from_bytes(&b).ok()))
}

pub(crate) fn pin_hub(tx: &Transaction, hub: &HubPublic) -> Result<()> {
    set_meta(tx, HUB, &postcard::to_stdvec(hub).expect("keys serialize"))
}

/// Whether the hub certified this device (at its first sync that reached it).
pub(crate) fn certified(conn: &Connection) -> Result<bool> {
    Ok(get_meta(conn, CERTIFICATE)?.is_some())
}

pub(crate) fn set_certificate(tx: &Transaction, certificate: &Certificate) -> Result<()> {
    set_meta(tx, CERTIFICATE, &certificate.to_bytes())
}

/// The revocation list as received (still signed), if any.
pub(crate) fn revocations_bytes(conn: &Connection) -> Result<Option<Vec<u8>>> {
    get_meta(conn, REVOCATIONS)
}

pub(crate) fn set_revocations(tx: &Transaction, signed: &[u8]) -> Result<()> {
    set_meta(tx, REVOCATIONS, signed)
}

pub(crate) fn directory_digest(conn: &Connection) -> Result<Option<[u8; 32]>> {
    Ok(get_meta(conn, DIRECTORY_DIGEST)?.and_then(|b| b.try_into().ok()))
}

/// The digest of what the device holds from the hub (`sync::identity`).
pub(crate) fn held_digest(conn: &Connection) -> Result<Option<[u8; 32]>> {
    Ok(get_meta(conn, HELD_DIGEST)?.and_then(|b| b.try_into().ok()))
}

pub(crate) fn set_held_digest(tx: &Transaction, digest: &[u8; 32]) -> Result<()> {
    set_meta(tx, HELD_DIGEST, digest)
}

/// When the certificates of the kept directory were issued up to; none while the directory
/// does not match the hub's digest (the hub then sends all of it).
pub(crate) fn directory_issued_through(conn: &Connection) -> Result<Option<i64>> {
    Ok(get_meta(conn, DIRECTORY_ISSUED_THROUGH)?
        .and_then(|b| b.try_into().ok())
        .map(i64::from_le_bytes))
}

/// The kept directory's rows: each device's certificate, as the hub sent it, by device.
pub(crate) fn directory_rows(conn: &Connection) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    let mut stmt = conn.prepare_cached("SELECT device, certificate FROM peer_directory")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Replaces the directory, whose rows are `held` (`directory_rows`), with `certificates`
/// (checked by the caller, kept as the hub sent them). `listed`: the hub's digest and when
/// they were issued up to, when they are exactly what the hub lists; without it, the next
/// request asks for all of it.
///
/// Only the rows that change are written: a region's directory is hundreds of certificates,
/// and a sync brings a few new ones.
pub(crate) fn set_directory(
    tx: &Transaction,
    held: &BTreeMap<Vec<u8>, Vec<u8>>,
    certificates: &[(Certificate, &[u8])],
    listed: Option<([u8; 32], i64)>,
) -> Result<()> {
    let wanted: HashMap<&[u8], &[u8]> = certificates
        .iter()
        .map(|(certificate, bytes)| (&certificate.device.as_bytes()[..], *bytes))
        .collect();
    let mut delete = tx.prepare_cached("DELETE FROM peer_directory WHERE device = ?1")?;
    for device in held.keys().filter(|d| !wanted.contains_key(d.as_slice())) {
        delete.execute([device])?;
    }
    for (device, bytes) in &wanted {
        if held.get(*device).map(Vec::as_slice) != Some(*bytes) {
            put_directory_row(tx, device, bytes)?;
        }
    }
    match listed {
        Some((digest, issued_through)) => {
            set_meta(tx, DIRECTORY_DIGEST, &digest)?;
            set_meta(tx, DIRECTORY_ISSUED_THROUGH, &issued_through.to_le_bytes())
        }
        None => {
            // Nor does the device hold what the hub would send: the next answer brings it.
            tx.execute(
                "DELETE FROM meta WHERE key IN (?1, ?2, ?3)",
                params![DIRECTORY_DIGEST, DIRECTORY_ISSUED_THROUGH, HELD_DIGEST],
            )?;
            Ok(())
        }
    }
}

/// Keeps `certificate` (checked by the caller: the pinned hub's, valid now) in the directory
/// when it was issued after the one held for its device: a peer shows its own at each session,
/// and a bundle its exporter's, renewed since this device last synced with the hub. Bundles
/// for that device and sessions with it then go on while the hub is out of reach. The
/// directory's digest stays the hub's listing: its next answer, the certificates issued since,
/// brings this one (or a later one) again and checks the whole.
pub(crate) fn keep_newer_certificate(tx: &Transaction, certificate: &Certificate) -> Result<()> {
    let device = certificate.device.as_bytes().to_vec();
    let held = tx
        .prepare_cached("SELECT certificate FROM peer_directory WHERE device = ?1")?
        .query_row([&device], |r| r.get::<_, Vec<u8>>(0))
        .optional()?;
    let newer = held
        .and_then(|bytes| Certificate::from_bytes(&bytes).ok())
        .is_none_or(|held| held.issued_ms < certificate.issued_ms);
    if newer {
        put_directory_row(tx, &device, &certificate.to_bytes())?;
    }
    Ok(())
}

/// Writes a device's certificate as the directory's row for it.
fn put_directory_row(tx: &Transaction, device: &[u8], certificate: &[u8]) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO peer_directory (device, certificate) VALUES (?1, ?2)",
    )?
    .execute(params![device, certificate])?;
    Ok(())
}

impl Store {
    /// `keep_newer_certificate` in a transaction of its own: a certificate a peer or a
    /// bundle showed, checked already.
    pub(crate) fn learn_certificate(&mut self, certificate: &Certificate) -> Result<()> {
        // The directory holds the others' (a device's own is its `certificate`).
        if certificate.device == self.device_id() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        keep_newer_certificate(&tx, certificate)?;
        tx.commit()?;
        Ok(())
    }

    /// The hub's signing key, made the first time it is asked for (a hub's first start) and
    /// kept in this store from then on.
    pub fn hub_key(&mut self) -> Result<HubKey> {
        let tx = self.conn.transaction()?;
        let key = match get_meta(&tx, HUB_SIGNING)? {
            Some(seed) => HubKey::from_bytes(&seed)?,
            None => {
                let key = HubKey::generate();
                set_meta(&tx, HUB_SIGNING, &*key.to_bytes())?;
                key
            }
        };
        tx.commit()?;
        Ok(key)
    }

    pub(crate) fn device_keys(&self) -> Result<DeviceKeys> {
        device_keys(&self.conn)?.ok_or(Error::Identity(IdentityError::NoCertificate))
    }

    /// This device's public keys (none for a hub's store).
    pub fn device_public_keys(&self) -> Result<Option<PublicKeys>> {
        Ok(device_keys(&self.conn)?.map(|k| k.public()))
    }

    /// The hub's keys, as this device pinned them at its first sync.
    pub fn hub_keys(&self) -> Result<Option<HubPublic>> {
        pinned_hub(&self.conn)
    }

    /// Whether this device takes `order` as its hub's order to wipe it: signed by the hub
    /// whose key it pinned at its first sync (`identity::is_wipe_order`), so that an order in
    /// any other hand (a network in clear, a server in the hub's place) destroys nothing. A
    /// device that never synced has no key to check it by, and nothing of the hub's to keep:
    /// it takes the order as before (a phone revoked before its first sync holds only what was
    /// recorded on it, which the revocation is for).
    pub fn obeys_wipe_order(&self, order: &str) -> Result<bool> {
        Ok(match self.hub_keys()? {
            Some(hub) => crate::identity::is_wipe_order(&hub, self.device_id(), order),
            None => true,
        })
    }

    /// This device's certificate, as the hub last issued it.
    pub fn certificate(&self) -> Result<Option<Certificate>> {
        get_meta(&self.conn, CERTIFICATE)?
            .map(|b| Certificate::from_bytes(&b).map_err(Error::from))
            .transpose()
    }

    /// What this device trusts now: the pinned hub key, the revocation list it last
    /// received, and the newest certificate of each device its directory holds. `NoCertificate` before its first sync.
    pub fn trust(&self) -> Result<Trust> {
        let hub = pinned_hub(&self.conn)?.ok_or(IdentityError::NoCertificate)?;
        let revoked = match revocations_bytes(&self.conn)? {
            Some(bytes) => Revocations::verified(&bytes, &hub.signing)?.devices,
            None => Vec::new(),
        };
        let newest = directory_rows(&self.conn)?
            .values()
            .filter_map(|bytes| Certificate::from_bytes(bytes).ok())
            .map(|c| (c.device, c))
            .collect();
        Ok(Trust {
            hub: hub.signing,
            revoked: revoked.into_iter().collect(),
            newest,
            now_ms: chrono::Utc::now().timestamp_millis(),
        })
    }

    /// The certificates of other devices the hub delivered, in the order of their devices
    /// (checked when they arrived, each by its signature or all by the hub's over the
    /// directory; check one again with `trust` before relying on it: signature, expiry,
    /// revocation).
    pub fn directory(&self) -> Result<Vec<Certificate>> {
        Ok(directory_rows(&self.conn)?
            .values()
            .filter_map(|bytes| Certificate::from_bytes(bytes).ok())
            .collect())
    }

    /// The records a holder of `scope` may receive from this device: what the hub would send
    /// it (`Scope::receives`, as the hub's SQL), reference data aside (only the hub sends it).
    pub(crate) fn ids_for(&self, scope: &Scope) -> Result<HashSet<Uuid>> {
        queries::ids_received_by(&self.conn, scope)
    }
}

//! Sync bundles: documents in a file, for a USB stick, an SD card or a messaging app, sealed so
//! that only their recipients read them and every reader knows who wrote them.
//!
//! A bundle is sealed (`identity::seal`: a random file key wrapped for each recipient's X25519
//! key, the body encrypted in 64 KiB chunks) over a signed body:
//!
//! ```text
//! certificate length: u32 LE | the exporter's certificate | payload length: u64 LE | payload
//!   | Ed25519 signature by the exporter over "vigie sealed bundle v1\0" | header hash
//!     | SHA-256(everything before the signature)
//! ```
//! The payload is the documents as a compressed message (`BODY_TAG`). Import checks, before
//! anything is stored: that this device is a recipient, every chunk, the exporter's certificate
//! (the pinned hub's signature, expiry, revocation), the signature, and that every record lies
//! in the exporter's scope and this device's (the hub's rule); then applies it in one
//! transaction. Any failure refuses the whole bundle.

use super::wire;
use crate::domain::area::AreaFilter;
use crate::domain::rights::Scope;
use crate::error::{Error, Result};
use crate::identity::{self, Certificate, IdentityError, verify_device};
use crate::store::{self, Store};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use uuid::Uuid;

const BODY_TAG: [u8; 4] = *b"VGB1";
const SIGNED_LABEL: &[u8] = b"vigie sealed bundle v1\0";
/// A bundle expands to at most this much; larger exports are split by the exporter.
const MAX_BUNDLE_EXPANDED: usize = 512 * 1024 * 1024;
/// And to at most this many times its compressed payload, past a floor: records compress
/// a few times over, lists repeated from record to record (a cooperative's buyers named on
/// each of its 200 workplaces) a few hundred times, where a hostile file of 23 KB expanded to
/// 480 MiB of zeros, which a phone allocated twice before finding them no documents.
const MAX_BUNDLE_RATIO: usize = 256;
const BUNDLE_EXPANSION_FLOOR: usize = 64 * 1024 * 1024;

/// Whether a bundle sealed is held to what its recipients take (`expansion_bound`): an app's
/// export is; a tool's or a test's documents are sealed as given, for the import to judge.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expansion {
    Checked,
    Unchecked,
}

/// What a bundle's payload of `compressed` bytes may expand to.
fn expansion_bound(compressed: usize) -> usize {
    compressed
        .saturating_mul(MAX_BUNDLE_RATIO)
        .clamp(BUNDLE_EXPANSION_FLOOR, MAX_BUNDLE_EXPANDED)
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Bundle {
    pub(super) from_device: Uuid,
    created_ms: i64,
    #[serde(with = "super::wire::documents")]
    pub(super) documents: Vec<(Uuid, Vec<u8>)>,
}

/// Who may open a bundle, chosen when it is exported.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum Recipient {
    /// One device (a supervisor's tablet), by its id, from the directory the hub delivered.
    Device(Uuid),
    /// The hub.
    Hub,
    /// Every device of the directory whose certificate names this area code or an area that
    /// contains it (by the published area tree).
    Area(String),
}

/// What importing a bundle did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BundleReport {
    pub records: usize,
    /// Records that brought something new.
    pub changed: usize,
    /// Records not taken: outside the scopes, or holding changes this device cannot take
    /// from a bundle (in its own name, or of a revoked device). The others are.
    pub refused: usize,
    pub from_device: Option<Uuid>,
}

fn refuse(record: Option<Uuid>, reason: impl Into<String>) -> Error {
    Error::DamagedBundle {
        record,
        reason: reason.into(),
    }
}

/// The payload of a bundle: whole documents (Automerge bytes) from `from_device`, as a
/// compressed message, before it is signed and sealed (for tools, tests and fuzzing: a payload
/// alone is not a bundle, and import refuses it).
pub fn encode_bundle(from_device: Uuid, documents: Vec<(Uuid, Vec<u8>)>) -> Vec<u8> {
    wire::encode(
        BODY_TAG,
        &Bundle {
            from_device,
            created_ms: Utc::now().timestamp_millis(),
            documents,
        },
    )
}

/// The signed message: label, header hash, hash of the body before the signature.
fn signed_message(header: &identity::SealedHeader, body: &[u8]) -> Vec<u8> {
    let mut message = SIGNED_LABEL.to_vec();
    message.extend_from_slice(&header.hash);
    message.extend_from_slice(&Sha256::digest(body));
    message
}

/// An opened body's parts.
struct Body<'a> {
    certificate: &'a [u8],
    payload: &'a [u8],
    signature: [u8; 64],
    /// Everything the signature covers (with the header).
    signed: &'a [u8],
}

/// Splits an opened body into the certificate, the payload and the signature.
fn split_body(body: &[u8]) -> Option<Body<'_>> {
    let length = u32::from_le_bytes(body.get(..4)?.try_into().ok()?) as usize;
    let certificate = body.get(4..4usize.checked_add(length)?)?;
    let at = 4 + length;
    let payload_length = u64::from_le_bytes(body.get(at..at + 8)?.try_into().ok()?);
    let payload_length = usize::try_from(payload_length).ok()?;
    let start = at + 8;
    let end = start.checked_add(payload_length)?;
    let payload = body.get(start..end)?;
    let signature: [u8; 64] = body.get(end..)?.try_into().ok()?;
    Some(Body {
        certificate,
        payload,
        signature,
        signed: &body[..end],
    })
}

/// Opens a sealed bundle with `secret`, judges the exporter's certificate it carries with
/// `trusted` (a device's trust, or the hub's registry), checks the exporter's signature, and
/// decodes the documents. The signature is checked only once the certificate is trusted.
pub(super) fn open_signed(
    bytes: &[u8],
    secret: &x25519_dalek::StaticSecret,
    trusted: impl FnOnce(&Certificate) -> Result<()>,
) -> Result<(Certificate, Bundle)> {
    let (header, body) = identity::open_sealed(bytes, secret, MAX_BUNDLE_EXPANDED)?;
    let Body {
        certificate,
        payload,
        signature,
        signed,
    } = split_body(&body).ok_or(IdentityError::Tampered)?;
    let exporter = Certificate::from_bytes(certificate)?;
    trusted(&exporter)?;
    verify_device(
        &exporter.keys,
        &signed_message(&header, signed),
        &signature,
        "sealed bundle",
    )?;
    let bundle: Bundle = wire::decode(BODY_TAG, "bundle", payload, expansion_bound(payload.len()))
        .map_err(|e| refuse(None, e.to_string()))?;
    if bundle.from_device != exporter.device {
        return Err(IdentityError::Tampered.into());
    }
    Ok((exporter, bundle))
}

impl Store {
    /// Exports every record (in `areas`, if given) that changed after change-log position
    /// `since` (0 for everything), sealed to `recipients`. Only records of this device's own
    /// scope go (what its certificate covers; reference data comes from the hub). Returns the
    /// bundle and the position to pass next time, so a device can send a peer only what
    /// changed since its last bundle to it.
    ///
    /// A bundle is one sealed body: every recipient reads all of it. So every record in it
    /// lies in every recipient's scope: the hub's is what this device may send it; a device's,
    /// its certificate's; `Recipient::Area` narrows the records to the areas named, and is
    /// sealed to the devices of the directory whose certificate names the area (or one
    /// containing it) and covers every record kept. Records a named recipient does not cover
    /// are left out. When records were selected and a named device covers none of them, none
    /// lies in the areas named, or none lies in every recipient's scope together, nothing is
    /// sealed: `IdentityError::NothingForRecipient` names the recipient (export it a bundle of
    /// its own). Nothing changed since `since` is an empty bundle.
    pub fn export_bundle(
        &self,
        since: i64,
        areas: &[AreaFilter],
        recipients: &[Recipient],
    ) -> Result<(Vec<u8>, i64)> {
        let certificate = self.certificate()?.ok_or(IdentityError::NoCertificate)?;
        let reference = self.reference();
        let own = certificate.principal().scope(&reference);
        let mut selected = self.ids_for(&own)?;
        let (mut documents, mark) =
            store::queries::documents_changed_after(&self.conn, since, areas)?;
        documents.retain(|(id, _)| selected.contains(id));
        // A record the hub refused is this phone's to correct: no other device could ever send
        // it on (as in a peer session). A bundle to the hub may carry it, corrected.
        if recipients.iter().any(|r| !matches!(r, Recipient::Hub)) {
            let refused = store::sync_state::refused_ids(&self.conn)?;
            documents.retain(|(id, _)| !refused.contains(id));
        }
        selected = documents.iter().map(|(id, _)| *id).collect();
        let nothing_for =
            |recipient: String, reason| IdentityError::NothingForRecipient { recipient, reason };
        let any_selected = !selected.is_empty();
        // The areas named narrow the records.
        let codes: Vec<&String> = recipients
            .iter()
            .filter_map(|r| match r {
                Recipient::Area(code) => Some(code),
                _ => None,
            })
            .collect();
        if !codes.is_empty() {
            let mut in_areas = HashSet::new();
            for code in &codes {
                in_areas.extend(self.ids_for(&Scope::of(own.role, [*code], &reference))?);
            }
            selected.retain(|id| in_areas.contains(id));
            if any_selected && selected.is_empty() {
                let named: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
                return Err(nothing_for(
                    format!("area {}", named.join(", ")),
                    "none of the records selected lies in the areas named",
                )
                .into());
            }
        }
        // A device named reads only what its certificate covers.
        let directory = self.trusted_directory()?;
        let in_reach = selected.clone();
        for recipient in recipients {
            let Recipient::Device(device) = recipient else {
                continue;
            };
            let Some(certificate) = directory.iter().find(|c| c.device == *device) else {
                continue; // `recipient_keys` refuses it.
            };
            let covered = self.ids_for(&certificate.principal().scope(&reference))?;
            if any_selected && in_reach.is_disjoint(&covered) {
                return Err(nothing_for(
                    format!("device {device}"),
                    "its areas cover none of the records selected",
                )
                .into());
            }
            selected.retain(|id| covered.contains(id));
        }
        if any_selected && selected.is_empty() {
            return Err(nothing_for(
                "the recipients together".into(),
                "no record selected lies in the areas of every recipient: export a bundle for each",
            )
            .into());
        }
        documents.retain(|(id, _)| selected.contains(id));
        let keys = self.recipient_keys(recipients, &directory, |scope| {
            let covered = self.ids_for(scope)?;
            Ok(selected.iter().all(|id| covered.contains(id)))
        })?;
        Ok((self.seal_to(documents, keys, Expansion::Checked)?, mark))
    }

    /// Signs `documents` as this device and seals them to `recipients` (`export_bundle` is the
    /// app's way; this one, for tools and tests, takes any documents, and import judges them).
    pub fn seal_bundle(
        &self,
        documents: Vec<(Uuid, Vec<u8>)>,
        recipients: &[Recipient],
    ) -> Result<Vec<u8>> {
        let directory = self.trusted_directory()?;
        let keys = self.recipient_keys(recipients, &directory, |_| Ok(true))?;
        self.seal_to(documents, keys, Expansion::Unchecked)
    }

    fn seal_to(
        &self,
        documents: Vec<(Uuid, Vec<u8>)>,
        sealed_to: Vec<[u8; 32]>,
        expansion: Expansion,
    ) -> Result<Vec<u8>> {
        let keys = self.device_keys()?;
        let certificate = self.certificate()?.ok_or(IdentityError::NoCertificate)?;
        self.trust()?.check_certificate(&certificate)?;
        let plain: usize = documents.iter().map(|(_, d)| d.len() + 32).sum();
        let payload = encode_bundle(self.device_id(), documents);
        // Refused here, not as damaged where it arrives.
        if expansion == Expansion::Checked && plain > expansion_bound(payload.len()) {
            return Err(Error::NotAllowed {
                rule: format!(
                    "the bundle would expand to more than a device takes from a file of its \
                     size ({} MiB from {} KiB): export fewer records at a time (by area, or \
                     since the last bundle's mark)",
                    plain / (1024 * 1024),
                    payload.len() / 1024
                ),
            });
        }
        let certificate = certificate.to_bytes();
        Ok(identity::seal(&sealed_to, |header| {
            let mut body = Vec::with_capacity(certificate.len() + payload.len() + 80);
            body.extend_from_slice(&(certificate.len() as u32).to_le_bytes());
            body.extend_from_slice(&certificate);
            body.extend_from_slice(&(payload.len() as u64).to_le_bytes());
            body.extend_from_slice(&payload);
            let signature = keys.sign(&signed_message(header, &body));
            body.extend_from_slice(&signature);
            body
        })?)
    }

    /// The certificates of the directory the hub delivered that are valid now.
    fn trusted_directory(&self) -> Result<Vec<Certificate>> {
        let trust = self.trust()?;
        Ok(self
            .directory()?
            .into_iter()
            .filter(|c| trust.check_certificate(c).is_ok())
            .collect())
    }

    /// Why `device` has no valid certificate here: the check's own refusal of the one the
    /// directory holds (expired: renewed at its next sync; revoked; superseded), or none held.
    fn why_not_a_recipient(&self, device: Uuid) -> Result<IdentityError> {
        let trust = self.trust()?;
        Ok(self
            .directory()?
            .iter()
            .filter(|c| c.device == device)
            .find_map(|c| trust.check_certificate(c).err())
            .unwrap_or(IdentityError::NoRecipient {
                reason: "no valid certificate for that device in the directory",
            }))
    }

    /// The X25519 keys of `recipients`: the hub's as pinned, devices' from `directory` (valid
    /// certificates). A device of an area recipient is sealed to only if `reads_all` says its
    /// scope holds every record sealed.
    fn recipient_keys(
        &self,
        recipients: &[Recipient],
        directory: &[Certificate],
        mut reads_all: impl FnMut(&Scope) -> Result<bool>,
    ) -> Result<Vec<[u8; 32]>> {
        let reference = self.reference();
        let exporter = self.certificate()?.map(|c| c.user);
        // A bundle is carried to someone: the hub or a device named, or another person's
        // device an area reaches (the exporter's own other phone alone reaches no one).
        let others_named = recipients.iter().any(|r| !matches!(r, Recipient::Area(_)));
        let mut keys = Vec::new();
        let mut reaches_someone = others_named;
        let (mut area_unheld, mut area_lapsed) = (false, false);
        for recipient in recipients {
            match recipient {
                Recipient::Hub => {
                    let hub = self.hub_keys()?.ok_or(IdentityError::NoCertificate)?;
                    keys.push(hub.agreement);
                }
                Recipient::Device(device) => {
                    let Some(certificate) = directory.iter().find(|c| c.device == *device) else {
                        return Err(self.why_not_a_recipient(*device)?.into());
                    };
                    keys.push(certificate.keys.agreement);
                }
                Recipient::Area(code) => {
                    // The devices of that area, of the areas within it (a district's bundle
                    // reaches its communities' monitors) and of the areas containing it (its
                    // region's supervisor), that may read it all.
                    let covering = reference.codes_containing(code);
                    let mut reached = 0;
                    // Other people's devices of the area itself, of the areas within it, and
                    // how many of each may read it all.
                    let (mut at, mut at_reading) = (0, 0);
                    let (mut within, mut within_reading) = (0, 0);
                    for certificate in directory {
                        let of_code = certificate.areas.iter().any(|a| a == code);
                        let inside = !of_code
                            && certificate
                                .areas
                                .iter()
                                .any(|a| a != code && reference.codes_containing(a).contains(code));
                        if !inside && !certificate.areas.iter().any(|a| covering.contains(a)) {
                            continue;
                        }
                        let reads = reads_all(&certificate.principal().scope(&reference))?;
                        let another = Some(certificate.user) != exporter;
                        if reads {
                            keys.push(certificate.keys.agreement);
                            reached += usize::from(another);
                        }
                        if another && of_code {
                            at += 1;
                            at_reading += usize::from(reads);
                        } else if another && inside {
                            within += 1;
                            within_reading += usize::from(reads);
                        }
                    }
                    // The area's people would open none of it (records of other areas beside
                    // theirs): sealed to those above them only, it misses whom it names. With
                    // no one at the area's own level, its people are those within it (a
                    // district's monitors), unless the bundle is for the hub or a device too
                    // (a district inspector's own, whose district no monitor reads whole).
                    let missed = (at > 0 && at_reading == 0)
                        || (at == 0 && within > 0 && within_reading == 0 && !others_named);
                    if missed {
                        return Err(IdentityError::NothingForRecipient {
                            recipient: format!("area {code}"),
                            reason: "its devices may not read every record of the bundle: \
                                     export a bundle for each area",
                        }
                        .into());
                    }
                    // An area no one else holds yet adds no one: the bundle still goes to the
                    // other recipients named (the hub, by default), else it is refused below,
                    // saying whether devices of it are in the directory with certificates no
                    // longer valid here.
                    if reached == 0 {
                        area_unheld = true;
                        area_lapsed |= self.directory()?.iter().any(|c| {
                            Some(c.user) != exporter && c.areas.iter().any(|a| covering.contains(a))
                        });
                    }
                    reaches_someone |= reached > 0;
                }
            }
        }
        keys.sort();
        keys.dedup();
        if !reaches_someone {
            return Err(IdentityError::NoRecipient {
                reason: if !area_unheld {
                    "a sealed bundle needs at least one recipient"
                } else if area_lapsed {
                    "the certificates of that area's devices here have expired or were \
                     replaced: each is renewed at its device's sync with the hub, or shown by \
                     a peer session with it"
                } else {
                    "no one else's device in the directory holds that area or one containing it"
                },
            }
            .into());
        }
        Ok(keys)
    }

    /// Imports a sealed bundle in one transaction: every record this device may take
    /// (`refused` counts the others); a damaged bundle, or a record that does not apply,
    /// nothing.
    pub fn import_bundle(&mut self, bytes: &[u8]) -> Result<BundleReport> {
        let keys = self.device_keys()?;
        // Bytes that do not open are damaged input, whatever this device's certificate.
        let (exporter, bundle) = open_signed(bytes, keys.agreement(), |c| {
            Ok(self.trust()?.check_certificate(c)?)
        })?;
        let own = self.certificate()?.ok_or(IdentityError::NoCertificate)?;
        // The exporter's certificate, checked, may be newer than this device's directory holds.
        self.learn_certificate(&exporter)?;
        let reference = self.reference();
        let scopes: [Scope; 2] = [
            exporter.principal().scope(&reference),
            own.principal().scope(&reference),
        ];
        let scopes: Vec<&Scope> = scopes.iter().collect();
        let senders = self.senders(&scopes, &exporter)?;
        let (taken, refused) = self.received_to_take(&senders, &bundle.documents, |id, e| {
            refuse(Some(id), e.to_string())
        })?;
        self.receive(|merging| {
            let mut report = BundleReport {
                from_device: Some(bundle.from_device),
                refused,
                ..BundleReport::default()
            };
            for (id, document) in &taken {
                match merging.merge(*id, document) {
                    Ok(merged) if !merged.complete => {
                        return Err(refuse(Some(*id), "the record's history is incomplete"));
                    }
                    Ok(merged) => {
                        report.records += 1;
                        report.changed += usize::from(merged.changed);
                    }
                    Err(Error::Storage(e)) => return Err(Error::Storage(e)),
                    Err(e) => return Err(refuse(Some(*id), e.to_string())),
                }
            }
            Ok(report)
        })
    }
}

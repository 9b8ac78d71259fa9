//! Sync through the store: with the hub (bytes out / bytes in, or one call for a whole session
//! through the app's `SyncTransport`, attachments' bytes included), with files (bundles) and
//! with another device (peer sessions). What a sync did is told in counts (`SyncReport`, `SyncSummary`); the records it
//! removed, one by one, to the change listeners.

use crate::error::{Result, TransportError, VigieError};
use crate::input;
use crate::listeners::{ChangeSource, RecordChange, Removal, guarded};
use crate::store::VigieStore;
use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use uuid::Uuid;
use vigie_core::sync::wire::{self, PushOutcome};
use vigie_core::sync::{
    AttachmentSummary, AttachmentSyncOptions, Discarded, PeerScope, Recipient, Refusal,
    RefusalDetail, RemovedRecord, StoreAccess, SyncOptions, TransferRefusal, sync_attachments,
    sync_with_hub,
};
use vigie_core::{AreaFilter, DownloadPolicy, Store};

/// A wipe order the hub did not sign (`TransportError::DeviceRevoked` whose order does not
/// check against the hub's key the store pinned): not obeyed.
const NOT_SIGNED: &str = "the hub's address answered with a wipe order the hub did not sign: \
    not obeyed, nothing was wiped (something on the way answered in the hub's place?)";

/// The app's carrier of sync messages to the hub (HTTP, usually: `POST <hub>/v1/sync` with
/// `Authorization: Bearer <enrolment token>` and `Content-Type: application/octet-stream`, the
/// request as the body; the response body is what to return).
#[uniffi::export(with_foreign)]
pub trait SyncTransport: Send + Sync {
    /// Carries one request and returns the hub's response. Called on the thread that called
    /// `sync_with`, between the session's steps: blocking here is expected, and the store
    /// serves its other calls meanwhile.
    fn exchange(&self, request: Vec<u8>) -> std::result::Result<Vec<u8>, TransportError>;

    /// Carries one chunk of an attachment's transfer: `POST <hub>/v1/attachments`, as
    /// `exchange` does. The hub answers a chunk over one of its limits with HTTP 413 and the
    /// refusal (with its figures) in an `application/octet-stream` body: return that body as
    /// for a 200 (the session marks the attachment failed and goes on); raise for any other
    /// error status.
    fn exchange_attachment(&self, request: Vec<u8>)
    -> std::result::Result<Vec<u8>, TransportError>;
}

/// How a sync session treats attachments' bytes, after the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct AttachmentSync {
    /// Which attachments learnt from other devices to download (those the user asked for with
    /// `request_attachment` always are). Captured ones are always uploaded.
    pub policy: DownloadPolicy,
    /// Whether the link is unmetered (Wi-Fi): `WifiOnly` downloads only then.
    pub unmetered: bool,
}

/// An attachment whose transfer failed for good, and why (it keeps the state `Failed`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FailedAttachment {
    pub id: String,
    pub reason: TransferRefusal,
}

/// Told after every exchange of a sync session, between its steps (the store is free: it may be
/// read from here); post the figures to the UI.
#[uniffi::export(with_foreign)]
pub trait SyncProgressListener: Send + Sync {
    fn on_progress(&self, summary: SyncSummary) -> Result<(), crate::listeners::ListenerError>;
}

/// A record the hub refused, and why. The device keeps its copy and offers it again. When its
/// content breaks a rule (`Refusal::BreaksValidation`) or takes a step the user may not
/// (`Refusal::StepNotAllowed`), `field` and `rule` say which field (for a step on the record as
/// a whole, its kind) and the rule's words, as a `Validation` or `NotAllowed` error does for a
/// local write (empty from a hub of an earlier version); a `Refusal::Damaged` of a record made
/// here under the id of another the hub holds says so on `id`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RefusedRecord {
    pub id: String,
    pub reason: Refusal,
    pub field: Option<String>,
    pub rule: Option<String>,
}

#[uniffi::export]
impl RefusedRecord {
    /// Why the hub refused the record, as a sentence for the app's user in `language` (`fr` or
    /// `en`; another code reads French), as `VigieError::text_in` says a local refusal: the
    /// field's label and the rule for a value refused, the rule for a step not allowed, the
    /// reason otherwise. Never a value the user typed.
    pub fn text_in(&self, language: String) -> String {
        use vigie_core::messages::{field_refusal, step_refusal};
        match (&self.reason, &self.field, &self.rule) {
            (Refusal::BreaksValidation, Some(field), Some(rule)) => {
                field_refusal(field, rule, &language)
            }
            (Refusal::StepNotAllowed | Refusal::Damaged, _, Some(rule)) => {
                step_refusal(rule, &language)
            }
            (reason, ..) => step_refusal(&reason.to_string(), &language),
        }
    }
}

/// A received record that could not be applied; it is fetched whole next time.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FailedRecord {
    pub id: String,
    pub reason: String,
}

/// What applying one hub response did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncReport {
    /// Records the hub stored from this device.
    pub accepted: i64,
    pub refused: Vec<RefusedRecord>,
    /// Records received and merged.
    pub received: i64,
    pub failed: Vec<FailedRecord>,
    /// Another exchange would do more (the hub has more to send, or pushes moved and the
    /// outbox holds more): make another request.
    pub more: bool,
    /// This device's clock is far from the hub's (more than 10 minutes, or changes dated
    /// before 2020): tell the user to set the phone's date and time.
    pub clock_skewed: bool,
    /// How far this device's clock runs ahead of the hub's (negative: behind), in seconds,
    /// when by more than 10 minutes.
    pub clock_offset_seconds: Option<i64>,
    /// Pushed records wait, past the changes the hub takes from one device in an hour: the
    /// seconds until pushing again is worth it.
    pub push_retry_in_seconds: Option<i64>,
    /// Records erased on the hub (their copies left the device for good).
    pub erased: i64,
    /// Records whose changes the hub kept for review (the user lost their area); they left the
    /// device.
    pub quarantined: i64,
    /// Records no longer in the user's scope that left the device.
    pub left_scope: i64,
    /// Records holding changes another device made (a colleague's bundle or peer session) that
    /// the hub waits to receive from that device: they stay in the outbox, nothing to correct,
    /// and go once their author's device has synced (`hub_outbox_len` counts them).
    pub awaiting_author: i64,
}

/// What a whole sync session did, so far (progress) or in the end.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncSummary {
    pub round_trips: i64,
    pub bytes_sent: i64,
    pub bytes_received: i64,
    pub accepted: i64,
    pub received: i64,
    /// How many records this session receives in all, as the hub counted them in its first
    /// answer: `received` against it is a long first sync's progress bar (records changed on
    /// the hub meanwhile may take `received` a little past it). None when the first answer
    /// held everything, or from a hub of an earlier version.
    pub incoming_total: Option<i64>,
    pub refused: Vec<RefusedRecord>,
    pub failed: Vec<FailedRecord>,
    /// This device's clock is far from the hub's: the days it gives records are wrong, and the
    /// hub refuses those after its today. Tell the user to set the phone's date and time.
    pub clock_skewed: bool,
    /// How far this device's clock runs ahead of the hub's (negative: behind), in seconds, as
    /// the last answer found it, when by more than 10 minutes.
    pub clock_offset_seconds: Option<i64>,
    /// Records still waiting to be sent (refused ones included).
    pub pending: i64,
    /// Some of `pending` wait because this device pushed more changes than the hub takes from
    /// one device in an hour: the seconds until a sync pushes again (sooner moves nothing).
    pub push_retry_in_seconds: Option<i64>,
    /// Records holding changes another device made (brought by a peer or a bundle) that wait
    /// for that device to sync: nothing to correct (ids).
    pub awaiting_author: Vec<String>,
    /// Records that held changes of a device the hub revoked (a lost or stolen phone), brought
    /// by a peer or a bundle: rebuilt on the hub's version with this device's own edits, the
    /// revoked device's changes dropped (ids).
    pub rebuilt: Vec<String>,
    /// Records erased on the hub (their copies left the device for good).
    pub erased: i64,
    /// Records whose changes the hub kept for review (the user lost their area); they left the
    /// device.
    pub quarantined: i64,
    /// Records no longer in the user's scope that left the device.
    pub left_scope: i64,
    /// Attachments the hub now holds whole from this device.
    pub attachments_uploaded: i64,
    /// Attachments now whole on this device.
    pub attachments_downloaded: i64,
    pub attachments_failed: Vec<FailedAttachment>,
}

fn long(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn refused(list: Vec<(Uuid, Refusal)>, details: &[(Uuid, RefusalDetail)]) -> Vec<RefusedRecord> {
    let refused = |(id, reason): (Uuid, Refusal)| {
        let detail = RefusalDetail::of(details, id);
        RefusedRecord {
            id: id.to_string(),
            reason,
            field: detail.map(|d| d.field.clone()),
            rule: detail.map(|d| d.rule.clone()),
        }
    };
    list.into_iter().map(refused).collect()
}

fn failed(list: Vec<(Uuid, String)>) -> Vec<FailedRecord> {
    let failed = |(id, reason): (Uuid, String)| FailedRecord {
        id: id.to_string(),
        reason,
    };
    list.into_iter().map(failed).collect()
}

impl From<vigie_core::sync::SyncReport> for SyncReport {
    fn from(r: vigie_core::sync::SyncReport) -> Self {
        SyncReport {
            accepted: long(r.accepted),
            refused: refused(r.refused, &r.refusal_details),
            received: long(r.received),
            failed: failed(r.failed),
            more: r.more,
            clock_skewed: r.clock_skewed,
            clock_offset_seconds: r.clock_offset_seconds,
            push_retry_in_seconds: r.push_retry_in_seconds.map(i64::from),
            erased: long(r.erased.len()),
            quarantined: long(r.quarantined.len()),
            left_scope: long(r.left_scope.len()),
            awaiting_author: long(r.awaiting_author.len()),
        }
    }
}

impl From<vigie_core::sync::SyncSummary> for SyncSummary {
    fn from(s: vigie_core::sync::SyncSummary) -> Self {
        SyncSummary {
            round_trips: long(s.round_trips),
            bytes_sent: long(s.bytes_sent),
            bytes_received: long(s.bytes_received),
            accepted: long(s.accepted),
            received: long(s.received),
            incoming_total: s.incoming_total.map(long),
            refused: refused(s.refused, &s.refusal_details),
            failed: failed(s.failed),
            clock_skewed: s.clock_skewed,
            clock_offset_seconds: s.clock_offset_seconds,
            pending: long(s.pending),
            push_retry_in_seconds: s.push_retry_in_seconds.map(i64::from),
            awaiting_author: s.awaiting_author.iter().map(Uuid::to_string).collect(),
            rebuilt: s.rebuilt.iter().map(Uuid::to_string).collect(),
            erased: long(s.erased.len()),
            quarantined: long(s.quarantined.len()),
            left_scope: long(s.left_scope.len()),
            attachments_uploaded: 0,
            attachments_downloaded: 0,
            attachments_failed: Vec::new(),
        }
    }
}

impl SyncSummary {
    /// The records' session followed by an attachments' session.
    fn with_attachments(mut self, a: &AttachmentSummary) -> SyncSummary {
        self.round_trips += long(a.round_trips);
        self.bytes_sent += long(a.bytes_sent);
        self.bytes_received += long(a.bytes_received);
        self.attachments_uploaded = long(a.uploaded.len());
        self.attachments_downloaded = long(a.downloaded.len());
        self.attachments_failed = a
            .failed
            .iter()
            .map(|(id, reason)| FailedAttachment {
                id: id.to_string(),
                reason: *reason,
            })
            .collect();
        self
    }
}

/// The core's options for the app's choice (None: the core's defaults).
fn attachment_options(choice: Option<AttachmentSync>) -> AttachmentSyncOptions {
    let defaults = AttachmentSyncOptions::default();
    match choice {
        None => defaults,
        Some(c) => AttachmentSyncOptions {
            policy: c.policy,
            unmetered: c.unmetered,
            ..defaults
        },
    }
}

/// A bundle file's bytes, and the mark to pass as `since` next time to export only what
/// changed after this one.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct BundleExport {
    pub bytes: Vec<u8>,
    pub mark: i64,
}

/// What importing a bundle did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct BundleReport {
    pub records: i64,
    /// Records that brought something new.
    pub changed: i64,
    /// The device that exported the bundle.
    pub from_device: Option<String>,
    /// Records not taken: outside the areas, or holding changes this device cannot take from
    /// a bundle (made in its own name elsewhere, or on a revoked device). The others are.
    pub refused: i64,
}

/// The records a hub response brings (empty if it does not decode: applying it fails then).
fn ids_in_response(response: &[u8], options: &SyncOptions) -> Vec<Uuid> {
    let Ok(decoded) = wire::decode_response(response, options.max_decompressed_bytes) else {
        return Vec::new();
    };
    let caught_up = |a: &&wire::PushAck| matches!(&a.outcome, PushOutcome::Accepted { catch_up, .. } if !catch_up.is_empty());
    let mut ids: Vec<Uuid> = decoded
        .acks
        .iter()
        .filter(caught_up)
        .map(|a| a.id)
        .collect();
    ids.extend(decoded.records.iter().map(|r| r.id));
    ids
}

/// What the listeners hear of a response (or session) applied: each record received (unless it
/// failed) and each record removed.
/// A session's way to the store (`StoreAccess`): the store's lock for each step. A store closed
/// or wiped between two steps ends the session with what its next call would raise.
struct Shared<'a> {
    store: &'a VigieStore,
    interrupted: Option<VigieError>,
}

impl StoreAccess for Shared<'_> {
    fn with<T>(
        &mut self,
        step: impl FnOnce(&mut Store) -> vigie_core::Result<T>,
    ) -> vigie_core::Result<T> {
        let mut failed = None;
        let stepped = self.store.with_store(|s| match step(s) {
            Ok(value) => Ok(Some(value)),
            Err(e) => {
                failed = Some(e);
                Ok(None)
            }
        });
        match (stepped, failed) {
            (Ok(Some(value)), _) => Ok(value),
            (_, Some(e)) => Err(e),
            (Err(e), None) => {
                let reason = e.to_string();
                self.interrupted = Some(e);
                Err(vigie_core::Error::Transport { reason })
            }
            (Ok(None), None) => Err(vigie_core::Error::Transport {
                reason: "a step of the session ended without its outcome".into(),
            }),
        }
    }
}

fn heard(
    store: &Store,
    received: Vec<Uuid>,
    failed: &[(Uuid, String)],
    removed: &[RemovedRecord],
) -> Vec<RecordChange> {
    let mut seen = HashSet::new();
    let mut changes: Vec<RecordChange> = received
        .into_iter()
        .filter(|id| !failed.iter().any(|(f, _)| f == id) && seen.insert(*id))
        .filter_map(|id| {
            let kind = store.kind_of(id).ok()?;
            Some(RecordChange::of(id, kind, ChangeSource::Hub))
        })
        .collect();
    changes.extend(removed.iter().map(RecordChange::removed_by_sync));
    changes
}

fn peer_scope(areas: Vec<AreaFilter>) -> PeerScope {
    PeerScope { areas }
}

#[uniffi::export]
impl VigieStore {
    /// Records waiting to be sent to the hub.
    pub fn hub_outbox_len(&self) -> Result<i64> {
        self.with_store(|s| Ok(long(s.hub_outbox_len()?)))
    }

    /// Records whose changes the hub refused and has not taken since (ids): each sync summary
    /// says why (`refused`); the user corrects them, or gives them up
    /// (`discard_refused_changes`).
    pub fn refused_records(&self) -> Result<Vec<String>> {
        self.with_store(|s| Ok(s.refused_records()?.iter().map(Uuid::to_string).collect()))
    }

    /// Gives up the changes the hub refused in a record, when its user cannot correct them (a
    /// step their role no longer allows; a record made on a phone since revoked): the record
    /// goes back to the version the hub holds (`HUB_VERSION`), or leaves the device when the
    /// hub holds nothing of it (`REMOVED`, told to the change listeners as `DISCARDED`), and
    /// nothing of it waits for the hub. `NotAllowed` for a record the hub refused nothing of,
    /// `NotFound` for one the store lacks; nothing changes then.
    pub fn discard_refused_changes(&self, id: String) -> Result<Discarded> {
        let id = input::id("id", &id)?;
        let (kind, discarded) = self.with_store(|s| {
            let kind = s.kind_of(id)?;
            Ok((kind, s.discard_refused_changes(id)?))
        })?;
        let change = match discarded {
            Discarded::HubVersion => RecordChange::of(id, kind, ChangeSource::Local),
            Discarded::Removed => {
                RecordChange::removed(id, kind, ChangeSource::Local, Removal::Discarded)
            }
        };
        self.listeners.changed(&[change]);
        Ok(discarded)
    }

    /// Bytes out: the next request for the hub. Send it with your own client, then pass the
    /// response to `hub_sync_apply`; repeat while the report says `more`.
    pub fn hub_sync_request(&self) -> Result<Vec<u8>> {
        self.with_store(|s| Ok(s.hub_sync_request(&SyncOptions::default())?))
    }

    /// Bytes in: applies the hub's response in one transaction. A damaged response is
    /// `DamagedInput`, with nothing stored from it. While the device receives its whole scope
    /// (its first sync, or a changed scope), lists are answered without their indexes, more
    /// slowly, until the page that says no `more` or the store's next opening.
    pub fn hub_sync_apply(&self, response: Vec<u8>) -> Result<SyncReport> {
        let options = SyncOptions::default();
        let ids = if self.listeners.is_empty() {
            Vec::new()
        } else {
            ids_in_response(&response, &options)
        };
        let (report, changes) = self.with_store(|s| {
            let report = s.hub_sync_apply(&response, &options)?;
            let changes = heard(s, ids, &report.failed, &report.removed);
            Ok((report, changes))
        })?;
        self.listeners.changed(&changes);
        Ok(report.into())
    }

    /// One call for a whole session through the app's transport: exchanges until the hub has
    /// nothing more and the outbox nothing it would accept, then transfers attachments' bytes
    /// (`exchange_attachment`): uploads of those captured here first, then the downloads
    /// `attachments` allows (None: every one, on any link); the most urgent records' first, in
    /// chunks, resuming where a cut session stopped. Blocks for the whole session, but holds
    /// the store only for each of its steps, never while the transport waits: the store's other
    /// calls, from other threads, wait for one step at most (a wipe or a close ends the session
    /// at its next step, raising what a call would). One session at a time: another started
    /// meanwhile waits for it (one started from its own transport or listener is `NotAllowed`).
    /// `progress` is told after each exchange, between the steps (it may read the store; post
    /// the figures to the UI).
    /// A transport failure stops the session (`Transport`, or `Authentication` for HTTP 401,
    /// `DeviceRevoked` when the hub revoked the device, `NotAllowed` for another 403); what was
    /// applied stays, and the next session resumes. Records the session removes (erased, out of
    /// the user's scope, quarantined) are told to the change listeners, one call each. An
    /// attachment refused for good (over the hub's limits, damaged) is in the summary's
    /// `attachments_failed` and keeps the state `Failed`.
    #[uniffi::method(default(progress = None, attachments = None))]
    pub fn sync_with(
        &self,
        transport: Arc<dyn SyncTransport>,
        progress: Option<Arc<dyn SyncProgressListener>>,
        attachments: Option<AttachmentSync>,
    ) -> Result<SyncSummary> {
        let summary = self.one_session(|| self.sync_session(transport, progress, attachments))?;
        // A tablet several people share: the hub's order to wipe another profile's device
        // comes through whichever profile syncs.
        let vault = self
            .vault
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .upgrade();
        if let Some(vault) = vault {
            vault.wipe_revoked(self)?;
        }
        Ok(summary)
    }

    /// The hub revoked this device (HTTP 403 with `"wipe": true`; `sync_with` calls it itself
    /// before raising `DeviceRevoked`): every record leaves the store now, pending changes
    /// included, the listeners hear each as `Removal.Wiped`, and this object is closed (later
    /// calls raise `ProfileWiped`). The file remembers it: opening it again raises
    /// `DeviceRevoked`, until the app wipes the profile (`Vault.wipe_user`).
    pub fn device_revoked(&self) -> Result<()> {
        let held = self.with_store(|s| Ok(s.forget_all_for_revocation()?))?;
        let changes: Vec<RecordChange> = held
            .into_iter()
            .map(|(id, kind)| RecordChange::removed(id, kind, ChangeSource::Hub, Removal::Wiped))
            .collect();
        self.listeners.changed(&changes);
        // The listeners heard of every record that left; the reference data stays in the file.
        if let Some(store) = self.take_wiped() {
            let _ = store.close();
        }
        Ok(())
    }

    // ------------------------------------------------------------------------------------------
    // Bundles (files) and peers (Bluetooth, Wi-Fi Direct, ...)

    /// Exports every record (in `areas`, if any) changed after `since` (0: everything). Keep
    /// the returned `mark` and pass it as `since` next time.
    ///
    /// The bundle is sealed: signed by this device and readable only by its `recipients` (a
    /// device of the directory the hub delivered, the hub, or every device whose certificate
    /// names an area code). None given: the hub and the devices of the areas exported (all:
    /// of this user's areas). Both devices must have synced with the hub once (their
    /// certificates): before, export and import raise `Authentication`, as does importing a
    /// bundle sealed to others.
    #[uniffi::method(default(since = 0, areas = [], recipients = []))]
    pub fn export_bundle(
        &self,
        since: i64,
        areas: Vec<AreaFilter>,
        recipients: Vec<Recipient>,
    ) -> Result<BundleExport> {
        input::recipients(&recipients)?;
        let (bytes, mark) = self.with_store(|s| {
            let recipients = if recipients.is_empty() {
                // The areas exported, else the exporter's own (the hub told them).
                let codes: Vec<String> = if areas.is_empty() {
                    s.user_profile()?.map(|p| p.areas).unwrap_or_default()
                } else {
                    areas
                        .iter()
                        .map(|a| a.level_and_code().1.to_string())
                        .collect()
                };
                std::iter::once(Recipient::Hub)
                    .chain(codes.into_iter().map(Recipient::Area))
                    .collect()
            } else {
                recipients
            };
            Ok(s.export_bundle(since, &areas, &recipients)?)
        })?;
        Ok(BundleExport { bytes, mark })
    }

    /// Imports a bundle: every record this device may take (`refused` counts the others),
    /// or, from a damaged bundle, nothing (`DamagedInput` says which record failed).
    pub fn import_bundle(&self, bytes: Vec<u8>) -> Result<BundleReport> {
        let report = self.with_store(|s| Ok(s.import_bundle(&bytes)?))?;
        self.listeners
            .bulk(ChangeSource::Bundle, long(report.changed));
        Ok(BundleReport {
            records: long(report.records),
            changed: long(report.changed),
            from_device: report.from_device.map(|u| u.to_string()),
            refused: long(report.refused),
        })
    }

    /// Starts a peer session as the side that initiates; send `message` to the other device,
    /// then feed each reply to `peer_step` until the session `is_finished`.
    #[uniffi::method(default(areas = []))]
    pub fn peer_start(&self, areas: Vec<AreaFilter>) -> Result<PeerStart> {
        let scope = peer_scope(areas);
        let max = SyncOptions::default().max_message_bytes;
        let (session, message) = self.with_store(|s| Ok(s.peer_start(&scope, max)?))?;
        Ok(PeerStart {
            session: PeerSession::new(session),
            message,
        })
    }

    /// Starts a peer session as the side that answers: feed it the initiator's messages with
    /// `peer_step` and send back each reply.
    #[uniffi::method(default(areas = []))]
    pub fn peer_accept(&self, areas: Vec<AreaFilter>) -> Result<Arc<PeerSession>> {
        let scope = peer_scope(areas);
        let max = SyncOptions::default().max_message_bytes;
        let session = self.with_store(|s| Ok(s.peer_accept(&scope, max)?))?;
        Ok(PeerSession::new(session))
    }

    /// Handles a message from the other device; returns the reply to send, or nothing when
    /// there is nothing to send: the session is complete (`is_finished`), or the message was
    /// one already handled, delivered twice (wait for the next). A reply returned when this
    /// side is finished is the session's last message: send it, the other side ends on it.
    /// Messages after the handshake are encrypted for this session: one of another session, or
    /// altered, is `Authentication` and leaves the session as it was. A damaged message is
    /// `DamagedInput` or `Transport`.
    pub fn peer_step(
        &self,
        session: Arc<PeerSession>,
        message: Vec<u8>,
    ) -> Result<Option<Vec<u8>>> {
        let mut session = session.lock();
        let before = session.received;
        let reply = self.with_store(|s| Ok(s.peer_step(&mut session, &message)?))?;
        let received = session.received - before;
        drop(session);
        self.listeners.bulk(ChangeSource::Peer, long(received));
        Ok(reply)
    }
}

/// One side of a peer-to-peer session (see `VigieStore.peer_start` / `peer_accept`).
#[derive(uniffi::Object)]
pub struct PeerSession {
    inner: Mutex<vigie_core::sync::PeerSession>,
}

impl PeerSession {
    fn new(session: vigie_core::sync::PeerSession) -> Arc<PeerSession> {
        Arc::new(PeerSession {
            inner: Mutex::new(session),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, vigie_core::sync::PeerSession> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[uniffi::export]
impl PeerSession {
    /// Nothing more to send or receive.
    pub fn is_finished(&self) -> bool {
        self.lock().is_finished()
    }

    /// Records received and merged so far.
    pub fn received(&self) -> i64 {
        long(self.lock().received)
    }

    /// Records received and not taken so far: outside the areas, or holding changes this
    /// device cannot take from a peer (made in its own name elsewhere, or on a revoked device).
    /// The session goes on with the others.
    pub fn refused(&self) -> i64 {
        long(self.lock().refused)
    }

    /// Records sent so far.
    pub fn sent(&self) -> i64 {
        long(self.lock().sent)
    }

    /// Records the other device asked for that did not fit in this session (a session carries
    /// a few times `max_message_bytes` of documents per message): it ends all the same; run
    /// another one (or sync with the hub) to bring them.
    pub fn left_over(&self) -> i64 {
        long(self.lock().left_over)
    }
}

/// A started peer session and the first message to send.
#[derive(uniffi::Record)]
pub struct PeerStart {
    pub session: Arc<PeerSession>,
    pub message: Vec<u8>,
}

impl VigieStore {
    /// `sync_with`'s session, one at a time (`one_session`).
    fn sync_session(
        &self,
        transport: Arc<dyn SyncTransport>,
        progress: Option<Arc<dyn SyncProgressListener>>,
        attachments: Option<AttachmentSync>,
    ) -> Result<SyncSummary> {
        let options = SyncOptions::default();
        let attachment_options = attachment_options(attachments);
        let track = !self.listeners.is_empty();
        let failure: RefCell<Option<TransportError>> = RefCell::new(None);
        let in_flight: RefCell<Vec<Uuid>> = RefCell::new(Vec::new());
        let applied: RefCell<Vec<Uuid>> = RefCell::new(Vec::new());
        // Records removed by the exchanges applied so far (the summary's list grows).
        let removed: RefCell<Vec<RemovedRecord>> = RefCell::new(Vec::new());
        // The core's engine sees a transport failure as text; the typed one is kept to raise.
        let carried = |answer: std::result::Result<Vec<u8>, TransportError>| {
            answer.map_err(|e| {
                let text = e.to_string();
                *failure.borrow_mut() = Some(e);
                text
            })
        };
        let told = |summary: SyncSummary| {
            if let Some(p) = &progress {
                guarded(|| p.on_progress(summary));
            }
        };
        // The store is held for each step of the session, never while the transport waits: a
        // form saved, a list read or a wipe asked on another thread waits for one step.
        let mut shared = Shared {
            store: self,
            interrupted: None,
        };
        let records = sync_with_hub(
            &mut shared,
            &options,
            |request| {
                let response = carried(transport.exchange(request.to_vec()))?;
                if track {
                    *in_flight.borrow_mut() = ids_in_response(&response, &options);
                }
                Ok(response)
            },
            |summary| {
                // Called once the exchange is applied.
                applied.borrow_mut().append(&mut in_flight.borrow_mut());
                *removed.borrow_mut() = summary.removed.clone();
                if progress.is_some() {
                    told(SyncSummary::from(summary.clone()));
                }
            },
        );
        let failed = match &records {
            Ok(summary) => summary.failed.clone(),
            Err(_) => Vec::new(),
        };
        let (applied, removed) = (applied.take(), removed.take());
        // A store closed or wiped during the session tells nothing more: no one listens.
        let changes = self
            .with_store(|s| Ok(heard(s, applied, &failed, &removed)))
            .unwrap_or_default();
        let result = records.and_then(|records| {
            let records = SyncSummary::from(records);
            let attachments = sync_attachments(
                &mut shared,
                &attachment_options,
                |request| carried(transport.exchange_attachment(request.to_vec())),
                |a| {
                    if progress.is_some() {
                        told(records.clone().with_attachments(a));
                    }
                },
            )?;
            Ok(records.with_attachments(&attachments))
        });
        self.listeners.changed(&changes);
        if let Some(interrupted) = shared.interrupted {
            return Err(interrupted);
        }
        let error = match result {
            Ok(summary) => return Ok(summary),
            Err(vigie_core::Error::Transport { reason }) => match failure.take() {
                // Obeyed only when the hub signed it, against its key this store pinned:
                // anything answering in its place (a network in clear, a server under its
                // name) destroys nothing.
                Some(TransportError::DeviceRevoked { order, .. })
                    if !self.with_store(|s| Ok(s.obeys_wipe_order(&order)?))? =>
                {
                    VigieError::NotAllowed {
                        reason: NOT_SIGNED.into(),
                    }
                }
                Some(e) => e.into(),
                None => VigieError::Transport { reason },
            },
            Err(e) => e.into(),
        };
        if matches!(error, VigieError::DeviceRevoked { .. }) {
            self.device_revoked()?;
        }
        Err(error)
    }
}

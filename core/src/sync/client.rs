//! A device's side of sync with its hub.
//!
//! State lives in the store, never in a session object: the outbox (records with changes the
//! hub may lack), the heads the hub is known to hold for each record, the records to fetch whole,
//! and the hub's cursor. A session cut at any byte therefore resumes where it stopped, and the
//! cursor moves only in the transaction that commits what the response brought.

use super::wire::{
    self, Cursor, PullEntry, PushAck, PushEntry, PushOutcome, Refusal, RefusalDetail, SyncRequest,
    SyncResponse, Tombstone, UserProfile,
};
use crate::codec;
use crate::doc;
use crate::domain::codes::RecordKind;
use crate::domain::reference::ReferenceData;
use crate::domain::rights::Principal;
use crate::error::{Error, Result};
use crate::store::receive::Merging;
use crate::store::{Merged, Store, deferred_indexes, erasure, queries, sync_state};
use automerge::{Automerge, ChangeHash, ReadDoc};
use rusqlite::Transaction;
use uuid::Uuid;

/// Limits of one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncOptions {
    /// The largest message either way, before compression (so also after).
    pub max_message_bytes: usize,
    /// How far a session (`sync_through`) raises `max_message_bytes` while the link is fast:
    /// it doubles after each exchange that took under two seconds, and halves again (never
    /// below where it started) after one that took over eight. Larger pages mean fewer round
    /// trips, and compress better (many documents share one compression window); smaller ones
    /// lose less when a weak link is cut.
    pub max_page_bytes: usize,
    /// The largest response accepted once decompressed.
    pub max_decompressed_bytes: usize,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            max_message_bytes: 256 * 1024,
            max_page_bytes: 1024 * 1024,
            max_decompressed_bytes: 64 * 1024 * 1024,
        }
    }
}

impl SyncOptions {
    /// The options for the next exchange of a session, after one that took `took`.
    fn after_exchange(self, started: &SyncOptions, took: std::time::Duration) -> SyncOptions {
        let page = if took < std::time::Duration::from_secs(2) {
            (self.max_message_bytes * 2).min(started.max_page_bytes)
        } else if took > std::time::Duration::from_secs(8) {
            self.max_message_bytes / 2
        } else {
            self.max_message_bytes
        };
        SyncOptions {
            max_message_bytes: page.max(started.max_message_bytes),
            ..self
        }
    }
}

/// What one response did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncReport {
    /// Records the hub stored from this device.
    pub accepted: usize,
    /// Records the hub refused, each with the rule that refused it. The device keeps its copy.
    pub refused: Vec<(Uuid, Refusal)>,
    /// Of `refused`, those whose content breaks a rule, with the field and the rule's words as
    /// the hub told them (a hub of an earlier version tells none).
    pub refusal_details: Vec<(Uuid, RefusalDetail)>,
    /// Records received and merged, whether or not they brought anything new: a first sync's
    /// walk of the scope sends back, whole, the records this device pushed in it (and again
    /// those of a page whose answer was lost).
    pub received: usize,
    /// Records whose changes arrived without earlier ones the device lacks (a record that just
    /// came into its areas): they are asked for whole in the next exchange.
    pub incomplete: usize,
    /// Received records that could not be applied, and why; they are fetched whole next time.
    pub failed: Vec<(Uuid, String)>,
    /// Another exchange would do more: the hub has more pages to send, or this exchange's
    /// pushes moved (taken, or rebuilt to go again) and the outbox holds records it did not
    /// carry (a message carries what fits). An app exchanging bytes itself repeats while it
    /// says so; records refused or waiting for their author wait for a later sync.
    pub more: bool,
    /// This device's clock is far from the hub's: it dated changes the hub found implausible,
    /// or it differs from the hub's by more than `CLOCK_TOLERANCE_MS` (`clock_offset_seconds`).
    pub clock_skewed: bool,
    /// How far this device's clock runs ahead of the hub's (negative: behind), in seconds,
    /// when by more than `CLOCK_TOLERANCE_MS`; none within it, or from a hub that does not say.
    pub clock_offset_seconds: Option<i64>,
    /// Records this device pushed wait, past the changes the hub takes from one device in an
    /// hour: the seconds until pushing again is worth it (`SyncSummary::push_retry_in_seconds`).
    pub push_retry_in_seconds: Option<u32>,
    /// Records whose changes the hub kept for review because this user lost their area; they
    /// left the device.
    pub quarantined: Vec<Uuid>,
    /// Records erased on the hub that this device held; they left it for good.
    pub erased: Vec<Uuid>,
    /// Records the hub refused as carrying changes of a device it revoked, which it never
    /// received from that device, rebuilt on the version the hub holds with this device's own
    /// edits written again (`Refusal::AuthorRevoked`); they go in the next exchange.
    pub rebuilt: Vec<Uuid>,
    /// Records holding changes another device made (a peer or a bundle brought them) that the
    /// hub has not received from that device yet: nothing to correct, they wait in the outbox
    /// for their author's device to sync (the hub took this device's own changes of them, if
    /// any), and are still offered to peers.
    pub awaiting_author: Vec<Uuid>,
    /// Records that left this device's scope (moved out of its areas, or a scope that no longer
    /// covers them) and were removed; they come back if the scope does.
    pub left_scope: Vec<Uuid>,
    /// Every record removed from the store by this response, with its kind and why.
    pub removed: Vec<RemovedRecord>,
}

/// Why a sync removed a record from the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Removal {
    /// Erased on the hub: gone for good.
    Erased,
    /// No longer in this device's scope.
    LeftScope,
    /// The hub kept this device's changes for review: the user lost the record's area.
    Quarantined,
}

/// A record a sync removed from the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemovedRecord {
    pub id: Uuid,
    pub kind: RecordKind,
    pub why: Removal,
}

/// What a whole session did (many exchanges).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncSummary {
    pub round_trips: usize,
    pub bytes_sent: usize,
    pub bytes_received: usize,
    pub accepted: usize,
    pub received: usize,
    /// How many records this session receives in all, as the hub counted them in its first
    /// answer (records changed on the hub meanwhile may take `received` a little past it):
    /// `received` against it is how far a long first sync has gone. None when the first
    /// answer held everything, or from a hub of an earlier version.
    pub incoming_total: Option<usize>,
    pub refused: Vec<(Uuid, Refusal)>,
    /// Of `refused`, the field and rule of those whose content breaks a rule
    /// (`SyncReport::refusal_details`).
    pub refusal_details: Vec<(Uuid, RefusalDetail)>,
    pub failed: Vec<(Uuid, String)>,
    /// This device's clock is far from the hub's (`SyncReport::clock_skewed`): the days it
    /// gives records (a case identified today, a verification) are wrong, and the hub refuses
    /// those after its own today. An app tells its user to set the phone's date and time.
    pub clock_skewed: bool,
    /// How far this device's clock runs ahead of the hub's (negative: behind), in seconds, as
    /// the last answer found it, when by more than `CLOCK_TOLERANCE_MS`.
    pub clock_offset_seconds: Option<i64>,
    /// Records still waiting in the outbox (refused ones, until they are accepted).
    pub pending: usize,
    /// Some of `pending` wait because this device pushed more changes than the hub takes from
    /// one device in an hour (`vigie serve --max-device-changes-per-hour`): the seconds until
    /// a sync pushes again, as the hub last said. An app that syncs sooner moves nothing more.
    pub push_retry_in_seconds: Option<u32>,
    pub quarantined: Vec<Uuid>,
    /// Records erased on the hub that this device held (`SyncReport::erased`).
    pub erased: Vec<Uuid>,
    /// Records waiting for the device that made some of their changes to sync
    /// (`SyncReport::awaiting_author`), at the end of the session.
    pub awaiting_author: Vec<Uuid>,
    /// Records the hub refused as carrying changes of a device it revoked, rebuilt on the hub's
    /// version with this device's own edits (`SyncReport::rebuilt`): what the revoked device
    /// had changed in them is gone from this device.
    pub rebuilt: Vec<Uuid>,
    pub left_scope: Vec<Uuid>,
    /// Every record the session removed from the store, with its kind and why.
    pub removed: Vec<RemovedRecord>,
}

const CURSOR_KEY: &str = "hub_cursor";
/// The last `SyncResponse::receipt` applied.
const RECEIPT_KEY: &str = "hub_receipt";
/// The meta key of the hub's incarnation this device last heard of (`SyncResponse::incarnation`).
const INCARNATION_KEY: &str = "hub_incarnation";
/// The most records one request pushes, whatever their size (a record offered again with its
/// heads alone weighs almost nothing): well under what a hub takes (`HubLimits`).
const MAX_PUSHED_RECORDS: usize = 1000;
/// Present while a walk of the whole scope is under way (`walks_whole_scope`).
const WALK_KEY: &str = "hub_walk";
/// When the exchanges whose pushes all stayed began (`more_behind`), as little-endian
/// milliseconds of the outbox's clock; none after an exchange that moved a push.
const STAYED_SINCE_KEY: &str = "hub_pushes_stayed_since";
/// The page a session starts at after one was cut (`link_page`), as little-endian bytes.
const LINK_PAGE_KEY: &str = "hub_link_page";
/// The smallest page a session falls back to (the hub answers at least as much).
const SMALLEST_PAGE: usize = 16 * 1024;

fn hash_array(heads: &[ChangeHash]) -> Vec<[u8; 32]> {
    heads.iter().map(|h| h.0).collect()
}

fn change_hashes(heads: &[[u8; 32]]) -> Vec<ChangeHash> {
    heads.iter().map(|h| ChangeHash(*h)).collect()
}

impl Store {
    /// Records waiting to be sent to the hub.
    pub fn hub_outbox_len(&self) -> Result<usize> {
        sync_state::outbox_len(&self.conn)
    }

    /// Builds the next request for the hub: this device's changes the hub lacks, as many as fit
    /// in one message, and the cursor of what it has received.
    pub fn hub_sync_request(&self, options: &SyncOptions) -> Result<Vec<u8>> {
        let cursor = stored_cursor(&self.conn)?;
        let mut push = Vec::new();
        let mut size = 0usize;
        sync_state::for_each_queued(&self.conn, |queued| {
            let document = match codec::load_stored(queued.id, queued.stored) {
                Ok(document) => document,
                // A record this store cannot read (damaged, or over the bounds an older version
                // let in) never blocks the rest of the queue: it stays in the outbox, unsent.
                Err(Error::DamagedDocument { .. } | Error::OverLimit { .. }) => return Ok(true),
                Err(e) => return Err(e),
            };
            let changes = changes_after(&document, &queued.hub_heads);
            if !push.is_empty()
                && (size + changes.len() > options.max_message_bytes
                    || push.len() >= MAX_PUSHED_RECORDS)
            {
                return Ok(false);
            }
            size += changes.len();
            push.push(PushEntry {
                id: queued.id,
                heads: hash_array(&document.get_heads()),
                changes,
            });
            Ok(true)
        })?;
        *self
            .ctx
            .pushed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            push.iter().map(|p| (p.id, p.heads.clone())).collect();
        let refetch = sync_state::refetch_ids(&self.conn, 1000)?;
        let receipt = sync_state::get_meta(&self.conn, RECEIPT_KEY)?
            .and_then(|b| b.try_into().ok())
            .map_or(0, i64::from_le_bytes);
        let request = SyncRequest {
            actor: self.actor().to_bytes().to_vec(),
            cursor,
            push,
            refetch,
            max_response_bytes: options.max_message_bytes as u32,
            receipt,
            identity: super::identity::request_identity(&self.conn)?,
            // This device works out the heads of the documents it receives (`prepare_headless`).
            headless_documents: true,
            incarnation: sync_state::get_meta(&self.conn, INCARNATION_KEY)?
                .and_then(|b| b.try_into().ok()),
            device_clock: Some(device_clock()),
        };
        Ok(wire::encode_request(&request))
    }

    /// Applies the hub's response in one transaction, the new cursor included: if the device
    /// dies before the commit, the next session asks again from the old cursor, and whatever was
    /// already applied is applied again without effect. While the device receives its whole
    /// scope, the query indexes are aside (`walks_whole_scope`) until the page that says no
    /// `more`, or until the store is next opened.
    pub fn hub_sync_apply(&mut self, response: &[u8], options: &SyncOptions) -> Result<SyncReport> {
        self.apply_decoded(wire::decode_response(
            response,
            options.max_decompressed_bytes,
        )?)
    }

    /// `hub_sync_apply` for a response already decoded.
    fn apply_decoded(&mut self, response: SyncResponse) -> Result<SyncReport> {
        let (device, user) = (self.device_id(), self.user_id());
        let pushed = std::mem::take(
            &mut *self
                .ctx
                .pushed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let report = self.receive(|merging| {
            // What arrives from the hub is queued for it only if it differs from what the hub
            // holds (decided per record below).
            merging.queue_for_hub(false);
            merging.headless_documents(response.headless_documents);
            if walks_whole_scope(merging.tx, &response)? {
                deferred_indexes::defer(merging.tx)?;
                sync_state::set_meta(merging.tx, WALK_KEY, &[])?;
            }
            let report = apply_response(merging, &response, device, user, &pushed)?;
            if !response.more {
                // The walk is complete: the indexes are made over everything it brought, in
                // the transaction of its last page.
                deferred_indexes::restore(merging.tx)?;
                sync_state::delete_meta(merging.tx, WALK_KEY)?;
            }
            Ok(report)
        })?;
        if !report.removed.is_empty() {
            self.purge_freed_content()?;
        }
        Ok(report)
    }

    /// Records waiting to be fetched whole from the hub.
    pub fn hub_refetch_len(&self) -> Result<usize> {
        sync_state::refetch_len(&self.conn)
    }

    /// Whether the record waits in the outbox for the hub.
    pub fn hub_pending(&self, id: Uuid) -> Result<bool> {
        sync_state::is_pending(&self.conn, id)
    }

    /// The records held here whose changes the hub refused and has not taken since (each sync
    /// summary says why: `SyncSummary::refused`), oldest id first.
    pub fn refused_records(&self) -> Result<Vec<Uuid>> {
        let mut ids: Vec<Uuid> = sync_state::refused_ids(&self.conn)?.into_iter().collect();
        ids.sort();
        Ok(ids)
    }

    /// Gives up the changes the hub refused in a record, when its user cannot correct them (a
    /// step their role no longer allows, a record a lost phone made): the record goes back to
    /// the version the hub holds, every change the hub lacks dropped, and nothing of it waits
    /// for the hub any more; a record the hub holds nothing of leaves this device (what another
    /// device made of it is asked for again, should the hub take it from that device). Only a
    /// refused record: `NotAllowed` otherwise, nothing changed.
    pub fn discard_refused_changes(&mut self, id: Uuid) -> Result<Discarded> {
        self.kind_of(id)?;
        let device = self.device_id();
        self.receive(|merging| {
            let tx = merging.tx;
            if !sync_state::refused_ids(tx)?.contains(&id) {
                return Err(Error::NotAllowed {
                    rule: "only changes the hub refused can be discarded, and it refused none of \
                           this record"
                        .into(),
                });
            }
            if crate::store::receive::back_to_hub_version(tx, merging.receiver, merging.cache, id)?
            {
                return Ok(Discarded::HubVersion);
            }
            let from_elsewhere = match crate::store::find_row(tx, id)? {
                Some((_, _, bytes)) => codec::load(id, &bytes).is_ok_and(|document| {
                    document
                        .get_changes_meta(&[])
                        .iter()
                        .any(|change| doc::device_of_actor(&change.actor) != Some(device))
                }),
                None => false,
            };
            // The hub's version that could not be taken beside this copy (another record
            // under the same id, made here) is fetched once this copy is gone: it never came
            // back, the case missing from its monitor's phone.
            let hub_holds_one = sync_state::refetch_marked(tx, id)?;
            erasure::forget_record(tx, id)?;
            if from_elsewhere || hub_holds_one {
                sync_state::mark_refetch(tx, id)?;
            }
            Ok(Discarded::Removed)
        })
    }
}

/// What `Store::discard_refused_changes` did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum Discarded {
    /// Back at the version the hub holds.
    HubVersion,
    /// The hub holds nothing of it that this device knows of: it left the device.
    Removed,
}

/// Whether `response` is a page of a walk of the device's whole scope from its start (a new
/// device, a scope that changed), with more pages to come: the query indexes are put aside for
/// the walk (`deferred_indexes`). A walk cut and resumed in a later session goes on aside.
fn walks_whole_scope(tx: &Transaction, response: &SyncResponse) -> Result<bool> {
    if !response.more {
        return Ok(false);
    }
    if sync_state::get_meta(tx, WALK_KEY)?.is_some() {
        return Ok(true);
    }
    Ok(stored_cursor(tx)?.is_none_or(|cursor| cursor.scope != response.cursor.scope))
}

/// The hub's cursor as the last applied response left it; `None` before any (or unreadable:
/// the walk then starts over, which applying makes harmless).
fn stored_cursor(conn: &rusqlite::Connection) -> Result<Option<Cursor>> {
    Ok(sync_state::get_meta(conn, CURSOR_KEY)?.and_then(|bytes| postcard::from_bytes(&bytes).ok()))
}

/// This device's clock and time zone now (`SyncRequest::device_clock`).
fn device_clock() -> wire::DeviceClock {
    let now = chrono::Local::now();
    wire::DeviceClock {
        now_ms: now.timestamp_millis(),
        utc_offset_minutes: now.offset().local_minus_utc() / 60,
    }
}

use crate::domain::records::CLOCK_TOLERANCE_MS;

/// How far this device's clock runs ahead of the hub's, which answered at `hub_now_ms`, in
/// seconds; none within `CLOCK_TOLERANCE_MS`. A phone whose clock went back to 2000 when its
/// battery ran out, or to its firmware's date, still records: its user is told to set it.
fn clock_offset_seconds(hub_now_ms: i64) -> Option<i64> {
    let offset = chrono::Utc::now()
        .timestamp_millis()
        .saturating_sub(hub_now_ms);
    (offset.abs() > CLOCK_TOLERANCE_MS).then_some(offset / 1000)
}

/// `Store::hub_sync_apply`'s work, in the transaction that also keeps the new cursor.
fn apply_response(
    merging: &mut Merging<'_, '_>,
    response: &SyncResponse,
    device: Uuid,
    user: Uuid,
    pushed: &std::collections::HashMap<Uuid, Vec<[u8; 32]>>,
) -> Result<SyncReport> {
    let tx = merging.tx;
    // Records this answer sets behind in the outbox are queued after this.
    let answered_at = sync_state::after_the_outbox(tx)?;
    let clock_offset_seconds = response.hub_now_ms.and_then(clock_offset_seconds);
    if let Some(hub_now_ms) = response.hub_now_ms {
        sync_state::set_hub_clock(tx, hub_now_ms)?;
    }
    let mut report = SyncReport {
        more: response.more,
        clock_skewed: clock_offset_seconds.is_some(),
        clock_offset_seconds,
        push_retry_in_seconds: response.push_retry_in_seconds,
        ..SyncReport::default()
    };
    let refetching = sync_state::refetch_len(tx)? > 0;
    // Out of this user's scope now: marked so before, or told so in this answer.
    let left = |id: &Uuid| -> Result<bool> {
        Ok(sync_state::has_left(tx, *id)? || response.left_scope.contains(id))
    };
    for PushAck { id, outcome } in &response.acks {
        match outcome {
            PushOutcome::Accepted {
                hub_heads,
                catch_up,
                clock_skewed,
            } => {
                report.accepted += 1;
                sync_state::mark_refused(tx, *id, false)?;
                report.clock_skewed |= clock_skewed;
                // The hub took it: it is in this user's scope after all.
                sync_state::clear_left(tx, *id)?;
                if !catch_up.is_empty() {
                    apply_pulled(merging, *id, catch_up, hub_heads, refetching, &mut report)?;
                } else {
                    // Nothing to catch up, or a catch-up that did not fit in the hub's
                    // answer: then the record stays in the outbox (its heads differ from
                    // the hub's) and the next push gets it.
                    sync_state::record_hub_heads(tx, *id, &change_hashes(hub_heads), None)?;
                }
            }
            PushOutcome::Quarantined => {
                // Delivered for review; the record is no longer this user's to hold, once what
                // was written after the push (between the session's steps) is delivered too:
                // until then it stays, leaving, and its next push is kept for review as well.
                report.quarantined.push(*id);
                if written_since_pushed(tx, *id, pushed.get(id))? {
                    sync_state::mark_left(tx, *id)?;
                } else {
                    remove(tx, *id, Removal::Quarantined, &mut report)?;
                }
            }
            PushOutcome::Erased => erase(tx, *id, &[], &mut report)?,
            PushOutcome::Refused {
                reason: Refusal::ForeignChanges | Refusal::AuthorRevoked,
                ..
            } if left(id)? && !holds_own_unsent(tx, device, *id)? => {
                // Out of this user's scope now (moved, deactivated), holding nothing of this
                // device's that the hub lacks: the device that made the rest carries it (or
                // its entry for review), or it will never come (rejected in review, a revoked
                // device's), and the record leaves this one.
                sync_state::unqueue(tx, *id)?;
            }
            PushOutcome::Refused {
                reason: Refusal::ForeignChanges,
                ..
            } => {
                report.awaiting_author.push(*id);
                // Behind the others in the outbox; still relayed to peers, which may reach the
                // hub or the author's device sooner.
                sync_state::queue_behind(tx, *id)?;
                sync_state::mark_refused(tx, *id, false)?;
            }
            PushOutcome::Refused {
                reason: Refusal::AuthorRevoked,
                ..
            } if left(id)? && sync_state::known_hub_heads(tx, *id)?.is_none() => {
                // Out of this user's scope, built on changes that will never be taken, and no
                // version of the hub's known to rebuild it on (the lost phone made it): nothing
                // of it can reach the hub, and the child's record leaves this device.
                sync_state::unqueue(tx, *id)?;
            }
            PushOutcome::Refused {
                reason: Refusal::AuthorRevoked,
                ..
            } if crate::store::receive::drop_revoked_changes(
                tx,
                merging.receiver,
                merging.cache,
                *id,
            )? =>
            {
                // Rebuilt on the hub's version without the revoked device's changes: this
                // device's own edits go again in the next exchange.
                report.rebuilt.push(*id);
            }
            PushOutcome::Refused { reason, detail } => {
                if *reason == Refusal::KindNotAllowed && sync_state::unqueue_unpushed(tx, *id)? {
                    continue;
                }
                report.refused.push((*id, *reason));
                if let Some(detail) = detail {
                    report.refusal_details.push((*id, detail.clone()));
                }
                // Kept in the outbox, behind the others, so one refused record never blocks
                // the queue.
                sync_state::queue_behind(tx, *id)?;
                if *reason == Refusal::MissingHistory {
                    // Forget what the hub was thought to hold: the next push sends it all.
                    // Nothing for its user to correct or give up (`refused_records`): giving
                    // it up would go back to a version the hub no longer holds, and the
                    // record would stay here, taken for sent.
                    sync_state::forget_hub_heads_for_a_whole_push(tx, *id)?;
                } else {
                    // Offered to no peer until the hub takes it.
                    sync_state::mark_refused(tx, *id, true)?;
                }
            }
        }
    }
    let pulled: Vec<(Uuid, &[u8])> = response
        .records
        .iter()
        .map(|entry| (entry.id, &entry.changes[..]))
        .collect();
    let profile_before = sync_state::user_profile(tx)?;
    let reference_before = crate::store::reference_marker(tx)?;
    merging.merge_each(&pulled, |merging, i, merged| {
        let PullEntry {
            id,
            hub_heads,
            changes,
        } = &response.records[i];
        after_pulled(
            merging,
            (*id, changes),
            merged,
            hub_heads,
            refetching,
            &mut report,
        )
    })?;
    // A record whose changes went to review and that is still the user's came back whole,
    // as the hub holds it: it did not leave after all.
    report.removed.retain(|r| {
        r.why != Removal::Quarantined || !response.records.iter().any(|e| e.id == r.id)
    });
    for Tombstone { id, roots } in &response.tombstones {
        erase(tx, *id, &change_hashes(roots), &mut report)?;
    }
    // From a hub of the previous version: ids only.
    for id in &response.erased {
        if !response.tombstones.iter().any(|t| t.id == *id) {
            erase(tx, *id, &[], &mut report)?;
        }
    }
    for id in &response.left_scope {
        sync_state::mark_left(tx, *id)?;
    }
    if let Some(identity) = &response.identity {
        super::identity::apply_identity(tx, device, identity)?;
    }
    if let Some(limits) = &response.attachment_limits {
        crate::store::attachments::set_limits(tx, limits)?;
    }
    // The user's role and areas as the hub holds them now (with the cursor they go with), and
    // the area trees in force (those received in this answer included). When either changed,
    // every record the scope no longer covers leaves the device (after its pending changes are
    // pushed), by the hub's own rule: a tree may cover less of the same areas (a community
    // taken out, merged, renamed; a code no tree holds covers nothing). The first profile a
    // store hears of removes nothing: what it holds came from its own user.
    let new_profile = response
        .profile
        .as_ref()
        .filter(|p| profile_before.as_ref() != Some(*p));
    if let Some(before) = &profile_before
        && (new_profile.is_some() || crate::store::reference_marker(tx)? != reference_before)
    {
        let reference = crate::store::reference_in(merging.cache, tx);
        mark_outside_scope(tx, device, user, new_profile.unwrap_or(before), &reference)?;
    }
    if let Some(profile) = new_profile {
        sync_state::set_user_profile(tx, profile)?;
    }
    remove_left(tx, &mut report)?;
    if response.reoffer {
        // The hub was restored from an older copy: what it told this device it held may be
        // lost. Every record is offered again; the hub answers each with what it lacks. So are
        // the attachments captured here.
        sync_state::queue_all_again(tx)?;
        crate::store::attachments::offer_uploads_again(tx)?;
    }
    if let Some(incarnation) = response.incarnation {
        sync_state::set_meta(tx, INCARNATION_KEY, &incarnation)?;
    }
    sync_state::set_meta(
        tx,
        CURSOR_KEY,
        &postcard::to_stdvec(&response.cursor).expect("cursor serializes"),
    )?;
    sync_state::set_meta(tx, RECEIPT_KEY, &response.receipt.to_le_bytes())?;
    // An app repeating the exchange while the answer said more stopped with most of a day's
    // offline work unsent: "more" was only the hub's pages, and 300 cases take several
    // messages up.
    // Records this exchange pushed that stay (refused, waiting for their author) are not sent
    // again by another exchange now; those it did not carry, and those rebuilt, are.
    let pushes_moved = report.accepted > 0 || !report.rebuilt.is_empty();
    if pushes_moved && !report.more {
        let mut stayed = 0;
        for id in pushed.keys() {
            stayed += usize::from(sync_state::is_pending(tx, *id)?);
        }
        report.more = !report.rebuilt.is_empty() || sync_state::outbox_len(tx)? > stayed;
    }
    if pushes_moved || pushed.is_empty() {
        sync_state::delete_meta(tx, STAYED_SINCE_KEY)?;
    } else if !report.more && report.push_retry_in_seconds.is_none() {
        report.more = more_behind(tx, pushed, answered_at)?;
    }
    Ok(report)
}

/// Whether another exchange would push records none of the exchanges whose pushes all stayed
/// (refused, waiting for their author: each set behind the others) has carried yet: a
/// colleague's bundle relayed here filled the message ahead of the user's own cases, and an
/// app repeating while `more` stopped with them unsent. Each such exchange carries records
/// not tried since the first (they come first in the outbox), so the repetition ends. Not
/// when a pushed record stayed where it was (nothing set it behind: it would come first
/// again).
fn more_behind(
    tx: &Transaction,
    pushed: &std::collections::HashMap<Uuid, Vec<[u8; 32]>>,
    answered_at: i64,
) -> Result<bool> {
    let since = match sync_state::get_meta(tx, STAYED_SINCE_KEY)? {
        Some(bytes) => bytes
            .try_into()
            .map(i64::from_le_bytes)
            .unwrap_or(answered_at),
        None => {
            sync_state::set_meta(tx, STAYED_SINCE_KEY, &answered_at.to_le_bytes())?;
            answered_at
        }
    };
    let carried = |id: Uuid| pushed.contains_key(&id);
    let stayed_in_place = sync_state::queued_before(tx, since, &|id| !carried(id))?;
    Ok(!stayed_in_place && sync_state::queued_before(tx, since, &carried)?)
}

/// Removes a record from the store, if it holds it, and reports it; true if it did.
fn remove(tx: &Transaction, id: Uuid, why: Removal, report: &mut SyncReport) -> Result<bool> {
    let forgotten = match why {
        // Gone from the hub too: nothing of it stays.
        Removal::Erased => erasure::forget_record(tx, id)?,
        // Kept by the hub: what was captured here and not yet uploaded stays until it is.
        Removal::LeftScope | Removal::Quarantined => {
            erasure::forget_record_keeping_uploads(tx, id)?
        }
    };
    let Some(kind) = forgotten else {
        return Ok(false);
    };
    report.removed.push(RemovedRecord { id, kind, why });
    Ok(true)
}

/// An erased record: its copy goes (reported as erased, if this device held one), and a
/// tombstone with the roots of its history (the hub's, and those of the copy held here) stops
/// any copy, under this id or another, from coming back. The hub sends the tombstones of its
/// erasures to every device in scope, which held the record or not.
fn erase(tx: &Transaction, id: Uuid, roots: &[ChangeHash], report: &mut SyncReport) -> Result<()> {
    let mut roots = roots.to_vec();
    if let Some((_, _, bytes)) = crate::store::find_row(tx, id)?
        && let Ok(document) = codec::load(id, &bytes)
    {
        roots.extend(codec::history_roots(&document, &[]));
    }
    for root in &roots {
        erasure::keep_erased_change(tx, id, root, true)?;
    }
    if remove(tx, id, Removal::Erased, report)? && !report.erased.contains(&id) {
        report.erased.push(id);
    }
    erasure::place_tombstone(tx, id, None, chrono::Utc::now().timestamp_millis())
}

/// Marks every record the scope of `profile` does not cover under `reference` as leaving.
fn mark_outside_scope(
    tx: &Transaction,
    device: Uuid,
    user: Uuid,
    profile: &UserProfile,
    reference: &ReferenceData,
) -> Result<()> {
    let scope = Principal {
        device,
        user,
        role: profile.role,
        areas: profile.areas.iter().cloned().collect(),
    }
    .scope(reference);
    queries::each_record_with_area(tx, |row| {
        if !scope.receives(row.kind, Some(&row.area)) {
            sync_state::mark_left(tx, row.id)?;
        }
        Ok(())
    })
}

/// Whether the record holds a change made on this device that the hub is not known to hold
/// (after the heads it last told; every change when none were told).
fn holds_own_unsent(tx: &Transaction, device: Uuid, id: Uuid) -> Result<bool> {
    let Some((_, _, bytes)) = crate::store::find_row(tx, id)? else {
        return Ok(false);
    };
    let document = codec::load(id, &bytes)?;
    let known = sync_state::known_hub_heads(tx, id)?
        .unwrap_or_default()
        .into_iter()
        .filter(|h| document.get_change_meta_by_hash(h).is_some())
        .collect::<Vec<_>>();
    Ok(document
        .get_changes_meta(&known)
        .iter()
        .any(|change| doc::device_of_actor(&change.actor) == Some(device)))
}

/// Whether record `id` holds other heads than the push answered carried (`pushed`: none when
/// the answer is to a request this store did not build, or an earlier one's).
fn written_since_pushed(
    tx: &Transaction,
    id: Uuid,
    pushed: Option<&Vec<[u8; 32]>>,
) -> Result<bool> {
    let Some(pushed) = pushed else {
        return Ok(false);
    };
    let Some((_, _, bytes)) = crate::store::find_row(tx, id)? else {
        return Ok(false);
    };
    let heads = hash_array(&codec::load(id, &bytes)?.get_heads());
    let mut now = heads;
    let mut then = pushed.clone();
    now.sort();
    then.sort();
    Ok(now != then)
}

/// Removes the records that left the scope and have nothing waiting for the hub. One with
/// changes in the outbox stays until they are pushed (the hub then keeps them for review, and
/// the record goes); one whose changes the hub refuses stays, so that nothing is lost.
fn remove_left(tx: &Transaction, report: &mut SyncReport) -> Result<()> {
    for id in sync_state::leaving(tx)? {
        let before = report.removed.len();
        remove(tx, id, Removal::LeftScope, report)?;
        if report.removed.len() > before {
            report.left_scope.push(id);
        }
    }
    Ok(())
}

/// The changes of a document after `known` heads (all of it when they are unknown).
pub(crate) fn changes_after(document: &Automerge, known: &[ChangeHash]) -> Vec<u8> {
    if !known.is_empty()
        && known
            .iter()
            .all(|h| document.get_change_by_hash(h).is_some())
    {
        document.save_after(known)
    } else {
        document.save_nocompress()
    }
}

/// Merges one record received from the hub. A record that fails is reported and fetched whole
/// next time; it never stops the others.
/// `refetching`: whether any record waits to be fetched whole (if none, there is nothing to
/// clear for each record received).
fn apply_pulled(
    merging: &mut Merging<'_, '_>,
    id: Uuid,
    changes: &[u8],
    hub_heads: &[[u8; 32]],
    refetching: bool,
    report: &mut SyncReport,
) -> Result<()> {
    let merged = merging.merge(id, changes);
    after_pulled(
        merging,
        (id, changes),
        merged,
        hub_heads,
        refetching,
        report,
    )
}

/// `received` as a whole document (with its heads, or without: `codec::load_headless`) that
/// holds every change it depends on; `None` for changes only (a catch-up).
fn whole_document_of(id: Uuid, received: &[u8]) -> Option<Automerge> {
    let document = match codec::load(id, received) {
        Ok(document) => document,
        Err(_) => codec::load(id, &codec::load_headless(id, received).ok()?).ok()?,
    };
    (document.get_missing_deps(&[]).is_empty() && !document.get_heads().is_empty())
        .then_some(document)
}

/// What follows the merge of a record received from the hub (`apply_pulled`).
fn after_pulled(
    merging: &mut Merging<'_, '_>,
    (id, received): (Uuid, &[u8]),
    merged: Result<Merged>,
    hub_heads: &[[u8; 32]],
    refetching: bool,
    report: &mut SyncReport,
) -> Result<()> {
    let tx = merging.tx;
    match merged {
        Ok(merged) => {
            report.received += 1;
            if !merged.complete {
                report.incomplete += 1;
                return sync_state::mark_refetch(tx, id);
            }
            if refetching {
                sync_state::clear_refetch(tx, id)?;
            }
            // Sent again: the record is back in this device's scope.
            sync_state::clear_left(tx, id)?;
            if !hub_heads.is_empty() {
                sync_state::record_hub_heads(tx, id, &change_hashes(hub_heads), Some(&merged.heads))
            } else if !merged.changed {
                // A whole document the device already held all of (a replay): what the hub was
                // known to hold is unchanged.
                Ok(())
            } else if merged.created {
                // A whole document the device did not have: the hub holds what it sent, and
                // the device nothing else, so nothing waits in the outbox (and no row says
                // what the hub holds: it is the record's heads).
                Ok(())
            } else if let Some(whole) = whole_document_of(id, received) {
                // A whole document over one the device held (a record changed between two
                // pages of a first sync): what the hub holds is what it sent. Queued
                // whatever it held, a phone whose user wrote nothing pushed back every such
                // record, counted as sent.
                sync_state::record_hub_heads(tx, id, &whole.get_heads(), Some(&merged.heads))
            } else {
                // What the hub holds is not known: the record may have changes it lacks.
                sync_state::queue_merged(tx, id)
            }
        }
        Err(Error::Storage(e)) => Err(Error::Storage(e)),
        Err(e) => {
            // The hub's version of a record it refuses from this device (`AuthorRevoked`),
            // which this device cannot rebuild on a version of the hub's it knows (it got the
            // record from peers only, holding a change forged under another device's number):
            // the hub's whole document is the version to rebuild on, this device's own edits
            // written again.
            if sync_state::refused_ids(tx)?.contains(&id)
                && sync_state::known_hub_heads(tx, id)?.is_none()
                && let Some(whole) = whole_document_of(id, received)
                && crate::store::receive::rebuild_on_received(
                    tx,
                    merging.receiver,
                    merging.cache,
                    id,
                    whole,
                )?
            {
                if refetching {
                    sync_state::clear_refetch(tx, id)?;
                }
                report.rebuilt.push(id);
                return Ok(());
            }
            report.failed.push((id, e.to_string()));
            sync_state::mark_refetch(tx, id)
        }
    }
}

/// Carries sync messages to a hub. `send` may start an exchange in the background and return at
/// once; `receive` returns the response to the oldest request sent and not yet received. The
/// session keeps at most two requests outstanding.
pub trait HubTransport {
    fn send(&mut self, request: Vec<u8>) -> std::result::Result<(), String>;
    fn receive(&mut self) -> std::result::Result<Vec<u8>, String>;
}

/// A transport that makes each exchange when its response is asked for.
struct OneAtATime<F> {
    exchange: F,
    queued: std::collections::VecDeque<Vec<u8>>,
}

impl<F: FnMut(&[u8]) -> std::result::Result<Vec<u8>, String>> HubTransport for OneAtATime<F> {
    fn send(&mut self, request: Vec<u8>) -> std::result::Result<(), String> {
        self.queued.push_back(request);
        Ok(())
    }

    fn receive(&mut self) -> std::result::Result<Vec<u8>, String> {
        let request = self.queued.pop_front().ok_or("no request was sent")?;
        (self.exchange)(&request)
    }
}

/// How a session reaches the device's store: for each of its steps (building a request,
/// applying a response, a chunk of an attachment), never while the transport waits on the
/// link. A store shared by the threads of an app (the bindings' `VigieStore`) is then free for
/// its other calls between the steps: a form saved while a sync crawls over a weak link waits
/// for one step, not for the whole session. Every step is a transaction of its own, and what
/// the others write in between is heads-based, as any local write: it stays in the outbox.
pub trait StoreAccess {
    fn with<T>(&mut self, step: impl FnOnce(&mut Store) -> Result<T>) -> Result<T>;
}

impl StoreAccess for Store {
    fn with<T>(&mut self, step: impl FnOnce(&mut Store) -> Result<T>) -> Result<T> {
        step(self)
    }
}

/// Runs a whole session: exchanges until the hub has nothing more to send and the outbox holds
/// nothing the hub would accept. `transport` carries one request to the hub and returns its
/// response; when it fails, the session stops and the next one resumes from the stored state.
pub fn sync_with_hub(
    store: &mut impl StoreAccess,
    options: &SyncOptions,
    transport: impl FnMut(&[u8]) -> std::result::Result<Vec<u8>, String>,
    progress: impl FnMut(&SyncSummary),
) -> Result<SyncSummary> {
    let mut transport = OneAtATime {
        exchange: transport,
        queued: Default::default(),
    };
    sync_through(store, options, &mut transport, progress)
}

impl Store {
    /// The request for the next page of a response that says more is waiting, built before the
    /// response is applied: the hub keeps no session and applying is idempotent, so the request
    /// can be on its way while this device applies the page it has (pushes wait for the next
    /// full request). `None` when the response is the last page.
    pub fn hub_pull_request_after(
        &self,
        response: &[u8],
        options: &SyncOptions,
    ) -> Result<Option<Vec<u8>>> {
        let response: SyncResponse =
            wire::decode_response(response, options.max_decompressed_bytes)?;
        Ok(self.next_page_request(&response, options))
    }

    /// `hub_pull_request_after` for a response already decoded.
    fn next_page_request(&self, response: &SyncResponse, options: &SyncOptions) -> Option<Vec<u8>> {
        if !response.more {
            return None;
        }
        let request = SyncRequest {
            actor: self.actor().to_bytes().to_vec(),
            cursor: Some(response.cursor),
            push: Vec::new(),
            refetch: Vec::new(),
            max_response_bytes: options.max_message_bytes as u32,
            receipt: response.receipt,
            // The first request of the session presented it.
            identity: None,
            headless_documents: true,
            incarnation: None,
            device_clock: None,
        };
        Some(wire::encode_request(&request))
    }
}

/// `sync_with_hub` over a transport that may have one more request in flight: while this device
/// applies a page of records, the hub prepares the next one.
pub fn sync_through(
    store: &mut impl StoreAccess,
    options: &SyncOptions,
    transport: &mut impl HubTransport,
    progress: impl FnMut(&SyncSummary),
) -> Result<SyncSummary> {
    let session = exchange_until_done(store, options, transport, progress);
    // A session cut in the middle of a walk leaves no query without its indexes until the walk
    // goes on: they are made over what arrived, and put aside again by the next page.
    let restored = store.with(|s| s.restore_query_indexes());
    let summary = session?;
    restored?;
    Ok(summary)
}

/// How many records written during a session it still pushes, beyond its outbox at the start.
const LATE_WRITES: usize = 16;

/// A cut exchange of a session whose pages were `page` bytes: the next session starts at half
/// that (a link that dropped each connection past 16 KB never carried a first page of
/// 256 KiB, however often the app synced).
fn cut(store: &mut impl StoreAccess, page: usize, reason: String) -> Error {
    let _ = store.with(|s| s.set_link_page(Some((page / 2).max(SMALLEST_PAGE))));
    Error::Transport { reason }
}

impl Store {
    /// The page a session starts at: the app's, or less after a cut (`cut`).
    fn link_page(&self, options: &SyncOptions) -> Result<usize> {
        let hinted = sync_state::get_meta(&self.conn, LINK_PAGE_KEY)?
            .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_slice()).ok())
            .map(|bytes| u64::from_le_bytes(bytes) as usize);
        Ok(match hinted {
            Some(page) => page.clamp(
                SMALLEST_PAGE.min(options.max_message_bytes),
                options.max_message_bytes,
            ),
            None => options.max_message_bytes,
        })
    }

    /// Keeps the page the next session starts at (`None`: the app's).
    fn set_link_page(&mut self, page: Option<usize>) -> Result<()> {
        let tx = self.conn.transaction()?;
        match page {
            Some(page) => sync_state::set_meta(&tx, LINK_PAGE_KEY, &(page as u64).to_le_bytes())?,
            None => sync_state::delete_meta(&tx, LINK_PAGE_KEY)?,
        }
        tx.commit()?;
        Ok(())
    }
}

/// `sync_through`'s exchanges.
fn exchange_until_done(
    store: &mut impl StoreAccess,
    options: &SyncOptions,
    transport: &mut impl HubTransport,
    mut progress: impl FnMut(&SyncSummary),
) -> Result<SyncSummary> {
    let mut summary = SyncSummary::default();
    let mut in_flight = false;
    // The options of the exchange under way: its pages grow while the link is fast, from
    // where the last session cut left them (`link_page`).
    let app = *options;
    let started = SyncOptions {
        max_message_bytes: store.with(|s| s.link_page(options))?,
        ..app
    };
    let mut options = started;
    let mut sent_at = std::time::Instant::now();
    // What the outbox held when the session started, and a few more: an app saving a form
    // every second while the link takes a second an exchange would otherwise keep the session
    // pushing for ever (the store is free between steps), and the attachments behind it would
    // never go. Writes past it go with the next session.
    let pushes_allowed = store.with(|s| s.hub_outbox_len())? + LATE_WRITES;
    // The answers handled, by their digest: the hub dates each one to the millisecond and
    // moves its cursors, so one that comes again is a replay (a transport's cache, someone on
    // the link), which counted as progress every time and kept a session asking for hours.
    let mut answered: std::collections::HashSet<[u8; 32]> = std::collections::HashSet::new();
    // A session makes progress every exchange or stops; this bound only guards against a hub
    // that keeps answering "more" without sending anything.
    for _ in 0..100_000 {
        // Whether this exchange's request is the next page of a walk (it pushes nothing): an
        // empty page is no sign that the outbox cannot move.
        let answering_page = in_flight;
        if !in_flight {
            let request = store.with(|s| s.hub_sync_request(&options))?;
            summary.bytes_sent += request.len();
            sent_at = std::time::Instant::now();
            transport
                .send(request)
                .map_err(|r| cut(store, options.max_message_bytes, r))?;
        }
        let response = transport
            .receive()
            .map_err(|r| cut(store, options.max_message_bytes, r))?;
        summary.bytes_received += response.len();
        summary.round_trips += 1;
        let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&response).into();
        if !answered.insert(digest) {
            return Err(wire::DecodeError::Replayed.into());
        }
        options = options.after_exchange(&started, sent_at.elapsed());
        let response = wire::decode_response(&response, options.max_decompressed_bytes)?;
        let waiting = response
            .waiting
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        in_flight = match store.with(|s| Ok(s.next_page_request(&response, &options)))? {
            Some(next) => {
                summary.bytes_sent += next.len();
                sent_at = std::time::Instant::now();
                transport
                    .send(next)
                    .map_err(|r| cut(store, options.max_message_bytes, r))?;
                true
            }
            None => false,
        };
        let (report, pending) =
            store.with(|s| Ok((s.apply_decoded(response)?, s.hub_outbox_len()?)))?;
        summary.accepted += report.accepted;
        summary.received += report.received;
        if let Some(waiting) = waiting
            && summary.incoming_total.is_none()
        {
            summary.incoming_total = Some(summary.received.saturating_add(waiting));
        }
        summary.clock_skewed |= report.clock_skewed;
        summary.clock_offset_seconds = report.clock_offset_seconds;
        // The latest answer to a push says whether pushes wait (a page of a walk pushes none).
        if !answering_page {
            summary.push_retry_in_seconds = report.push_retry_in_seconds;
        }
        summary.pending = pending;
        // A record refused for the first time in this session went behind the others (and a
        // refused record may fill a whole message): the others are offered before the session
        // ends.
        let newly_refused = report
            .refused
            .iter()
            .any(|(id, _)| !summary.refused.iter().any(|(known, _)| known == id))
            || report
                .awaiting_author
                .iter()
                .any(|id| !summary.awaiting_author.contains(id));
        let set_behind = report.refused.len() + report.awaiting_author.len();
        // A record the hub lacks the history of is sent whole next: that too moves.
        let sent_whole_next = report.refused.iter().any(|(id, reason)| {
            *reason == Refusal::MissingHistory
                && !summary.refused.iter().any(|(known, _)| known == id)
        });
        let progressed = report.accepted > 0
            || report.received > 0
            || !report.rebuilt.is_empty()
            || sent_whole_next
            || (newly_refused && summary.pending > set_behind);
        for (id, reason) in report.refused {
            match summary.refused.iter_mut().find(|(known, _)| *known == id) {
                Some(entry) => entry.1 = reason,
                None => summary.refused.push((id, reason)),
            }
            // The latest word on each record, told or not.
            summary.refusal_details.retain(|(known, _)| *known != id);
            summary.awaiting_author.retain(|known| *known != id);
        }
        summary.refusal_details.extend(report.refusal_details);
        // A record refused earlier in the session and settled since (accepted once the store
        // moved its edits to a new actor, quarantined, erased) is no longer refused.
        let refused = std::mem::take(&mut summary.refused);
        summary.refused = store.with(|s| {
            let mut still_refused = Vec::with_capacity(refused.len());
            for (id, reason) in refused {
                if s.hub_pending(id)? {
                    still_refused.push((id, reason));
                }
            }
            Ok(still_refused)
        })?;
        for id in report.awaiting_author {
            summary.refused.retain(|(known, _)| *known != id);
            if !summary.awaiting_author.contains(&id) {
                summary.awaiting_author.push(id);
            }
        }
        let waiting = std::mem::take(&mut summary.awaiting_author);
        summary.awaiting_author = store.with(|s| {
            let mut still_waiting = Vec::with_capacity(waiting.len());
            for id in waiting {
                if s.hub_pending(id)? {
                    still_waiting.push(id);
                }
            }
            Ok(still_waiting)
        })?;
        summary
            .refusal_details
            .retain(|(id, _)| summary.refused.iter().any(|(known, _)| known == id));
        summary.failed.extend(report.failed);
        summary.quarantined.extend(report.quarantined);
        summary.erased.extend(report.erased);
        for id in &report.rebuilt {
            summary.refused.retain(|(known, _)| known != id);
            if !summary.rebuilt.contains(id) {
                summary.rebuilt.push(*id);
            }
        }
        summary.left_scope.extend(report.left_scope);
        summary.removed.extend(report.removed);
        progress(&summary);
        // Records that arrived incomplete are fetched whole in the same session, and so are
        // records asked for whole that did not fit in the last answer, as long as answers bring
        // something.
        let refetch_left = progressed && store.with(|s| s.hub_refetch_len())? > 0;
        // The bound on pushes is for writes made during the session: records the hub lacks the
        // history of (a hub restored from a backup offers every record again, and those it
        // lost go whole) are sent now, or they would wait, looking refused, for the next link.
        if !in_flight
            && report.incomplete == 0
            && !refetch_left
            && (summary.pending == 0
                || (!progressed && !answering_page)
                || (summary.accepted >= pushes_allowed && !sent_whole_next))
        {
            break;
        }
    }
    // Whole, after a cut: the next session starts where this one's pages ended (grown while
    // the link was fast), up to the app's.
    if started.max_message_bytes < app.max_message_bytes {
        let page = options.max_message_bytes;
        store.with(|s| s.set_link_page((page < app.max_message_bytes).then_some(page)))?;
    }
    Ok(summary)
}

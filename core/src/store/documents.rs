//! A record's document written with its index rows and change-log entry, in the caller's
//! transaction, and read back as the typed record of its kind. Every path that writes a record
//! ends in `save_document`: the derived values and index rows always follow the document.

use super::attachments;
use super::{LocalWrite, Origin, WriteContext, erasure, index, sync_state};
use crate::codec;
use crate::codec::bounds::DocumentLimits;
use crate::doc;
use crate::domain::area::Area;
use crate::domain::codes::{CaseStatus, RecordKind, ReferenceType};
use crate::domain::derived;
use crate::domain::limits::DocumentLimit;
use crate::domain::records::{
    ChildCase, Record, ReferenceDocument, Subject, User, Visit, Workplace,
};
use crate::domain::records::{Concurrent, MERGE_CHAIN};
use crate::domain::reference::{ReferenceData, ReferencePins};
use crate::error::{Error, Result, ValidationError};
use crate::storage::{ReferenceCache, ReferenceMarker, ReferenceSource};
use automerge::{ActorId, Automerge, ChangeHash, ReadDoc};
use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;
use uuid::Uuid;

/// The row of a record: its rowid, kind and document (Automerge bytes).
pub(crate) fn find_row(conn: &Connection, id: Uuid) -> Result<Option<(i64, RecordKind, Vec<u8>)>> {
    let row = conn
        .prepare_cached("SELECT rowid, kind, doc FROM records WHERE id = ?1")?
        .query_row([id.as_bytes()], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })
        .optional()?;
    match row {
        None => Ok(None),
        Some((rowid, kind, stored)) => {
            let kind = RecordKind::from_i64(kind).ok_or_else(|| Error::DamagedDocument {
                id,
                reason: "unknown record kind in the store".into(),
            })?;
            Ok(Some((rowid, kind, codec::decode(id, stored)?)))
        }
    }
}

/// Loads a record's document for editing, checking that it is of the kind the caller expects.
pub(crate) fn load_for<R: Record>(
    conn: &Connection,
    id: Uuid,
    actor: &ActorId,
) -> Result<(i64, Automerge)> {
    let (rowid, kind, bytes) = find_row(conn, id)?.ok_or(Error::NotFound {
        kind: Some(R::KIND),
        id,
    })?;
    if kind != R::KIND {
        return Err(Error::WrongKind {
            id,
            expected: R::KIND,
            actual: kind,
        });
    }
    let document = doc::load(id, &bytes)?.with_actor(actor.clone());
    Ok((rowid, document))
}

/// A local write that would leave its record over a bound every load applies (its history's
/// operations or changes, its size) is the user's input refused: the record stays as it was,
/// readable, and the app is told which bound.
pub(crate) fn refused_as_input(error: Error) -> Error {
    match error {
        // No change is small enough once the history is full.
        Error::OverLimit {
            limit: DocumentLimit::Changes,
            ..
        } => ValidationError::new(
            "record",
            "holds as many changes as one record may: it cannot be changed any more",
        )
        .into(),
        Error::OverLimit { limit, .. } => ValidationError::new(
            "record",
            format!("would exceed the {limit} one record may hold: make a smaller change"),
        )
        .into(),
        other => other,
    }
}

/// Validates a new record and writes it as a new document, in the caller's transaction.
pub(crate) fn insert_new<R: Record>(
    tx: &Transaction,
    write: &LocalWrite<'_>,
    record: &R,
) -> Result<R> {
    refuse_reference::<R>()?;
    refuse_user_on_device::<R>(write)?;
    let (reference, acting) = (&*write.reference, write.acting.as_ref());
    let mut record = record.clone();
    if record.id().is_nil() {
        record.set_id(Uuid::now_v7());
    }
    if crate::domain::records::ReferenceDocument::reserved_id(record.id()) {
        return Err(ValidationError::new(
            "id",
            crate::domain::records::ReferenceDocument::RESERVED_ID,
        )
        .into());
    }
    record.set_version(Default::default());
    reference.pin_new(&mut record);
    record.derive(reference);
    // A day the phone's wrong clock gave is said first: the rules that compare days (a birth
    // after the identification) would name a right one.
    let today = super::sync_state::today(tx, true)?;
    crate::domain::records::events_within_their_time(&today, &[], &record.event_dates())?;
    record.validate(reference)?;
    crate::domain::records::texts_within_rules(&[], &record.free_texts())?;
    crate::domain::records::plans_within_childhood(None, record.subject(), reference)?;
    check_references(tx, &record)?;
    check_visit_filing(tx, &record, &|| Ok(None))?;
    if let Some(acting) = acting {
        acting.check_write(None, &record)?;
    }
    let id = record.id();
    if let Some((_, kind, _)) = find_row(tx, id)? {
        // The kind the store holds under the id: "workplace X exists" for a child case's id
        // would send the app looking for a workplace.
        return Err(Error::AlreadyExists { kind, id });
    }
    if erasure::is_erased(tx, id)? {
        return Err(Error::Erased { id });
    }
    let mut document = Automerge::new().with_actor(write.actor.clone());
    doc::write_record(&mut document, &record, &write.author)?;
    check_merge_target(tx, &document, None)?;
    let stored = read_derived::<R>(&document, id, reference)?;
    write.save(tx, id, R::KIND, None, &mut document, &[])?;
    Ok(stored)
}

/// A record as `Store::get` reads it: its derived fields, stored or not, worked out from the
/// document's values (what a write returns to its caller).
fn read_derived<R: Record>(document: &Automerge, id: Uuid, reference: &ReferenceData) -> Result<R> {
    let mut record = doc::read_record::<R>(document, id)?;
    derive_stored(
        &mut record,
        reference,
        &document.get_heads(),
        &doc::concurrent_deciding::<R>(document),
    );
    Ok(record)
}

/// The records a written record names are of the kinds its fields say, where this store holds
/// them (`records::check_references`; one not held may be on its way).
fn check_references<R: Record>(tx: &Transaction, record: &R) -> Result<()> {
    let kind_of = |id| find_row(tx, id).map(|row| row.map(|(_, kind, _)| kind));
    Ok(crate::domain::records::check_references(
        &[],
        &record.references(),
        kind_of,
    )??)
}

/// A visit is filed under the area of the workplace it visits, where this store holds the
/// workplace (`records::check_visit_filing`, as the hub checks it). `stored`: the visit as
/// the document holds it (none for a new one), read only when the areas differ: a visit
/// filed before its workplace moved keeps its area through later edits.
fn check_visit_filing<R: Record>(
    tx: &Transaction,
    record: &R,
    stored: &dyn Fn() -> Result<Option<R>>,
) -> Result<()> {
    let Subject::Visit(visit) = record.subject() else {
        return Ok(());
    };
    let a = &visit.area;
    let same: Option<bool> = tx
        .prepare_cached(
            "SELECT s.country IS (SELECT id FROM area_codes WHERE code = ?2)
                AND s.region IS (SELECT id FROM area_codes WHERE code = ?3)
                AND s.district IS (SELECT id FROM area_codes WHERE code = ?4)
                AND s.community IS (SELECT id FROM area_codes WHERE code = ?5)
             FROM records r JOIN scope_index s ON s.record = r.rowid
             WHERE r.id = ?1 AND r.kind = ?6",
        )?
        .query_row(
            params![
                visit.workplace_id.as_bytes(),
                a.country,
                a.region,
                a.district,
                a.community,
                RecordKind::Workplace as i64
            ],
            |r| r.get(0),
        )
        .optional()?;
    if same != Some(false) {
        return Ok(());
    }
    let stored = stored()?;
    let was = match stored.as_ref().map(Record::subject) {
        Some(Subject::Visit(was)) => Some(was),
        _ => None,
    };
    Ok(crate::domain::records::check_visit_filing(
        was, visit, false,
    )?)
}

/// A case merged into another names a case this store holds, as the hub requires
/// (`hub::merge_target`): checked when a write sets it, on the document written.
fn check_merge_target(
    tx: &Transaction,
    document: &Automerge,
    before: Option<&[ChangeHash]>,
) -> Result<()> {
    let Some(target) = doc::merged_into_of(document, None) else {
        return Ok(());
    };
    if before.is_some_and(|heads| doc::merged_into_of(document, Some(heads)) == Some(target)) {
        return Ok(());
    }
    match find_row(tx, target)? {
        Some((_, RecordKind::ChildCase, _)) => Ok(()),
        _ => Err(Error::NotAllowed {
            rule: "a case is merged only into a case held on this device".into(),
        }),
    }
}

/// `Store::update`'s work, in the caller's transaction.
pub(crate) fn update_in<R: Record>(
    tx: &Transaction,
    write: &LocalWrite<'_>,
    record: &R,
) -> Result<R> {
    refuse_reference::<R>()?;
    refuse_user_on_device::<R>(write)?;
    // An edit is made at the version the caller read: a record with none (built from a form
    // rather than read, or its version dropped on the way) would set every field it holds as
    // if read now, undoing unseen what others changed since, with no conflict shown.
    if record.version().is_empty() {
        return Err(ValidationError::new(
            "version",
            "must be the version of the record as read from this store (an edit is made at it)",
        )
        .into());
    }
    let reference = &write.reference;
    let mut record = record.clone();
    let id = record.id();
    let (rowid, mut document) = load_for::<R>(tx, id, write.actor)?;
    // A form saved again from the version it read, over saves of this device only: the
    // user's saves follow one another (`doc::rebased_own_edit`).
    if let Some(rebased) = doc::rebased_own_edit(&document, &record, write.author.device)? {
        record = rebased;
    }
    // The versions a record was captured with are the stored ones, whatever the caller holds
    // (an app that does not know the field sends none).
    if let Some(pins) = record.pins_mut() {
        *pins = doc::read_pins(&document);
    }
    record.follow_reference_in_force(reference);
    record.derive(reference);
    // The user's own steps are judged from the version the caller read (the edit is made at
    // it): what changed meanwhile through sync is someone else's step, merged (and shown as a
    // conflict if both set a field).
    let heads = record.version().heads();
    check_edit(
        tx,
        write,
        &record,
        &|| doc::read_record(&document, id),
        &|| {
            if heads
                .iter()
                .any(|h| document.get_change_by_hash(h).is_none())
            {
                return Err(Error::UnknownVersion { id });
            }
            if heads.is_empty() {
                doc::read_record(&document, id)
            } else {
                doc::read_record_at(&document, id, heads)
            }
        },
    )?;
    let before = document.get_heads();
    if doc::write_record(&mut document, &record, &write.author)?.is_none() {
        return read_derived(&document, id, reference);
    }
    check_merge_target(tx, &document, Some(&before))?;
    let stored = read_derived::<R>(&document, id, reference)?;
    check_status_step_in_conflict(&document, id, &before, &stored)?;
    // A visit's edit over two supervisors' reviews side by side (its visitor submitting it
    // again while one validated it and the other returned it, the return shown) sets each
    // review aside: judged from each, as the hub judges it (`settled_values`), rather than
    // refused there for good.
    if R::KIND == RecordKind::Visit
        && let Some(acting) = &write.acting
    {
        let was: R = doc::read_record_at(&document, id, &before)?;
        let settled = settled_values(&document, (&before, &document.get_heads()), &was, &stored);
        for step in &settled.steps {
            crate::domain::rights::check_step(acting.role, acting.user, step)?;
        }
    }
    write.save(tx, id, R::KIND, Some(rowid), &mut document, &before)?;
    Ok(stored)
}

/// A case this write moved to a status `rights::check_case_facts` judges, while a follow-up
/// holds values side by side one of which would refuse it: refused until someone chooses
/// (`rights::check_case_facts_in_conflict`). Read only for those statuses, and the status
/// before only when such values stand: most writes pass without a read.
fn check_status_step_in_conflict<R: Record>(
    document: &Automerge,
    id: Uuid,
    before: &[ChangeHash],
    written: &R,
) -> Result<()> {
    let Subject::ChildCase(case) = written.subject() else {
        return Ok(());
    };
    if !matches!(
        case.status,
        CaseStatus::Withdrawn | CaseStatus::Prevented | CaseStatus::Closed
    ) {
        return Ok(());
    }
    let concurrent = doc::concurrent_deciding::<ChildCase>(document);
    if case.followup_readings(&concurrent).is_empty() {
        return Ok(());
    }
    let was: ChildCase = doc::read_record_at(document, id, before)?;
    if was.status != case.status {
        crate::domain::rights::check_case_facts_in_conflict(case, &concurrent)?;
    }
    Ok(())
}

/// The rules every local edit passes, as the hub will judge them (`update_in`, `resolve_in`):
/// the record's own, the records it names exist, no day after today unless it was set before
/// (`stored`: the record as the document holds it, read only then), and, on a device that
/// knows its user, the user's steps from `read` (the version the edit was made at).
fn check_edit<R: Record>(
    tx: &Transaction,
    write: &LocalWrite<'_>,
    record: &R,
    stored: &dyn Fn() -> Result<R>,
    read: &dyn Fn() -> Result<R>,
) -> Result<()> {
    // A day the phone's wrong clock gave is said first: the rules that compare days (a
    // verification before the identification) would name one the user cannot change.
    let dates = record.event_dates();
    let today = super::sync_state::today(tx, true)?;
    if dates.iter().any(|(_, day)| today.implausible(*day)) {
        crate::domain::records::events_within_their_time(&today, &stored()?.event_dates(), &dates)?;
    }
    // What the record as stored broke already (a rule newer than the value: a blank task an
    // earlier version took) holds back no edit that leaves it so (a follow-up could not be
    // recorded on the case), and lets nothing else through. The hub judges alike
    // (`hub::check_content`).
    if record.validate(&write.reference).is_err() {
        let stored = stored().ok();
        crate::domain::records::validate_beside(record, stored.as_ref(), |r| {
            r.validate(&write.reference)
        })?;
    }
    check_references(tx, record)?;
    check_visit_filing(tx, record, &|| stored().map(Some))?;
    // Read as stored only when a text breaks the rule: one set before stays.
    let texts = record.free_texts();
    if crate::domain::records::texts_within_rules(&[], &texts).is_err() {
        let stored = stored()?;
        crate::domain::records::set_texts_within_rules(
            Some((stored.subject(), &stored.free_texts())),
            record.subject(),
            texts,
        )?;
    }
    // Read as stored only when a plan passes the birthday: one set before stays.
    let plans = |before| {
        crate::domain::records::plans_within_childhood(before, record.subject(), &write.reference)
    };
    if plans(None).is_err() {
        plans(Some(stored()?.subject()))?;
    }
    if let Some(acting) = &write.acting {
        acting.check_write(Some(&read()?), record)?;
    }
    Ok(())
}

/// After a receive, in its transaction: each child case it made a merged duplicate
/// (`merged_away`: its id and its heads here before) may hold what this device recorded on it
/// while the merge was made elsewhere (a follow-up made offline, a referral). The merge took
/// the duplicate as its maker saw it; what this device held beyond that is brought over to the
/// case kept (`ChildCase::bring_over`), as this user's edit, checked as any edit of theirs and
/// queued for the hub. Only a device that made some of what the merge missed does so, once: the
/// moment its copy became a duplicate. An edit the user may not make, or a kept case this
/// device does not hold, leaves it on the duplicate, as before.
pub(crate) fn carry_over(
    tx: &Transaction,
    write: &LocalWrite<'_>,
    merged_away: &[(Uuid, Vec<ChangeHash>)],
) -> Result<()> {
    for (id, before) in merged_away {
        tx.execute_batch("SAVEPOINT carry_over")?;
        match carry_over_one(tx, write, *id, before) {
            Ok(()) => tx.execute_batch("RELEASE carry_over")?,
            Err(Error::Storage(e)) => return Err(Error::Storage(e)),
            // Not this user's to bring over, or not readable: the duplicate keeps it.
            Err(_) => tx.execute_batch("ROLLBACK TO carry_over; RELEASE carry_over")?,
        }
    }
    Ok(())
}

fn carry_over_one(
    tx: &Transaction,
    write: &LocalWrite<'_>,
    id: Uuid,
    before: &[ChangeHash],
) -> Result<()> {
    let (_, document) = load_for::<ChildCase>(tx, id, write.actor)?;
    let held: ChildCase = doc::read_record_at(&document, id, before)?;
    let arrived = document.get_changes_meta(before);
    // The merge's own change, among those after `before`, read at its dependencies (the
    // duplicate as the merge took it).
    let Some(merge_deps) = doc::merge_deps(&document, &arrived) else {
        return Ok(());
    };
    // Only a device that made some of what the merge missed brings it over: another that held
    // it (relayed by a peer) would bring back, after the supervisor removed it from the kept
    // case, what its maker already brought.
    let after_held: HashSet<ChangeHash> = arrived.iter().map(|c| c.hash).collect();
    let own_missed = document
        .get_changes_meta(&merge_deps)
        .into_iter()
        .filter(|change| !after_held.contains(&change.hash))
        .any(|change| doc::device_of_actor(&change.actor) == Some(write.author.device));
    if !own_missed {
        return Ok(());
    }
    let taken: ChildCase = doc::read_record_at(&document, id, &merge_deps)?;
    let mut target = doc::merged_into_of(&document, None);
    for _ in 0..MERGE_CHAIN {
        let Some(kept_id) = target.filter(|k| *k != id) else {
            return Ok(());
        };
        let (_, kept_document) = match load_for::<ChildCase>(tx, kept_id, write.actor) {
            Ok(found) => found,
            Err(Error::NotFound { .. } | Error::WrongKind { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut kept: ChildCase = doc::read_record(&kept_document, kept_id)?;
        if kept.merged_into.is_some() {
            target = kept.merged_into;
            continue;
        }
        if kept.bring_over(&held, Some(&taken), &write.reference) {
            update_in(tx, write, &kept)?;
        }
        return Ok(());
    }
    Ok(())
}

/// `Store::resolve_conflict`'s work on a record of kind `R`, in the caller's transaction.
pub(crate) fn resolve_in<R: Record>(
    tx: &Transaction,
    write: &LocalWrite<'_>,
    id: Uuid,
    path: &[String],
    value: &serde_json::Value,
) -> Result<()> {
    let (rowid, mut document) = load_for::<R>(tx, id, write.actor)?;
    let stored = doc::read_record::<R>(&document, id)?;
    let before = document.get_heads();
    doc::resolve::<R>(&mut document, id, path, value, &write.author)?;
    let mut resolved = match doc::read_record::<R>(&document, id) {
        Err(Error::DamagedDocument { .. }) => {
            return Err(
                ValidationError::new(path.join("."), "not a valid value for this field").into(),
            );
        }
        other => other?,
    };
    // A value with keys its field does not have (a point holding a child's name): read back,
    // the record ignores them, but they would travel to every device of the area.
    if let Ok(json) = serde_json::to_value(&resolved)
        && doc::holds_unknown_fields(&document, None, &json)
    {
        return Err(ValidationError::new(
            path.join("."),
            "holds a field this record does not have",
        )
        .into());
    }
    crate::domain::records::above_the_area_chosen(&mut resolved, path, &write.reference);
    // The derived fields follow the resolved value, in the document too.
    resolved.derive(&write.reference);
    // A resolution is an edit, made at the record as stored, and a step from each device's
    // values it overrides: a monitor keeping one supervisor's closure (or merge, or
    // verification day) over another's undoes the other's, whichever the merge showed. A
    // visit's review kept is a review (`rights::settling`).
    let settled = settled_values(
        &document,
        (&before, &document.get_heads()),
        &stored,
        &resolved,
    );
    if let Some(acting) = &write.acting {
        for step in &settled.steps {
            crate::domain::rights::check_step(acting.role, acting.user, step)?;
        }
    }
    let (judged_from, overridden) = (settled.from, settled.overridden);
    let stored = || Ok(judged_from.clone());
    check_edit(tx, write, &resolved, &stored, &stored)?;
    doc::write_record(&mut document, &resolved, &write.author)?;
    check_merge_target(tx, &document, Some(&before))?;
    write.save(tx, id, R::KIND, Some(rowid), &mut document, &before)?;
    // A duplicate merged into two cases at once, settled on one: the other lists it no more
    // among the cases merged into it (its file, its erasure and the console named a child
    // that is not its duplicate).
    for (path, value) in overridden.iter().flatten() {
        let Some(other) = value
            .as_str()
            .and_then(|v| Uuid::parse_str(v).ok())
            .filter(|_| path.len() == 1 && path[0] == "merged_into")
        else {
            continue;
        };
        let held = match load_for::<ChildCase>(tx, other, write.actor) {
            Ok((_, document)) => doc::read_record::<ChildCase>(&document, other)?,
            Err(Error::NotFound { .. } | Error::WrongKind { .. }) => continue,
            Err(e) => return Err(e),
        };
        if held.merged_from.contains(&id) {
            let mut unmerged = held;
            unmerged.merged_from.remove(&id);
            update_in(tx, write, &unmerged)?;
        }
    }
    Ok(())
}

pub(crate) fn not_by_record_writes() -> Error {
    Error::NotAllowed {
        rule: "reference data changes only by publishing it (publish_reference)".into(),
    }
}

fn refuse_reference<R: Record>() -> Result<()> {
    if R::KIND == RecordKind::Reference {
        return Err(not_by_record_writes());
    }
    Ok(())
}

/// A device never writes user records, whether it knows its role or not: the hub takes them
/// from its administrator only, and a user written on a phone that never synced would stay
/// there, read as real, while the hub refused it.
fn refuse_user_on_device<R: Record>(write: &LocalWrite<'_>) -> Result<()> {
    if R::KIND != RecordKind::User || !write.ctx.on_device {
        return Ok(());
    }
    // The rule's words are the matrix's, whichever role the device would have.
    let step = crate::domain::rights::Step::Administration(RecordKind::User);
    crate::domain::rights::check_step(crate::domain::codes::Role::Supervisor, Uuid::nil(), &step)?;
    Ok(())
}

impl LocalWrite<'_> {
    /// Saves a document this write changed, with the write's context (`save_document`).
    fn save(
        &self,
        tx: &Transaction,
        id: Uuid,
        kind: RecordKind,
        rowid: Option<i64>,
        document: &mut Automerge,
        before: &[ChangeHash],
    ) -> Result<i64> {
        save_document(tx, &self.ctx, self.cache, id, kind, rowid, document, before)
    }
}

/// Writes a document, its change-log entry and its index rows, in the caller's transaction.
#[allow(clippy::too_many_arguments)]
pub(crate) fn save_document(
    tx: &Transaction,
    ctx: &WriteContext,
    cache: &ReferenceCache,
    id: Uuid,
    kind: RecordKind,
    rowid: Option<i64>,
    document: &mut Automerge,
    before: &[ChangeHash],
) -> Result<i64> {
    // A phone's own edit past its share of the record's history is its user's input refused,
    // at the save, rather than a push the hub refuses for good once the work is done.
    if let Some(author) = ctx
        .author
        .filter(|_| ctx.origin == Origin::Local && ctx.on_device)
        && !before.is_empty()
        && !doc::devices_within_share(
            document,
            &HashSet::from([author.device]),
            &DocumentLimits::STANDARD,
        )
    {
        return Err(ValidationError::new("record", doc::DEVICE_SHARE_RULE).into());
    }
    // Read the record before writing anything: a document that does not read as a record of
    // its kind fails here, with nothing written, and the caller's transaction stays clean.
    let parts = DocumentParts::of(kind, id, document, before)?;
    write_document(tx, ctx, cache, id, kind, rowid, Some(document), parts)
}

/// What `write_document` stores of a document, worked out without the store (so that received
/// documents can be worked out on other threads while earlier ones are written).
pub(crate) struct DocumentParts {
    record: TypedRecord,
    stored: Vec<u8>,
    heads: Vec<ChangeHash>,
    /// Its deciding fields' values side by side (`concurrent_of`).
    concurrent: Vec<Concurrent>,
    /// The hashes of the changes made after the heads the store held before.
    new_changes: Vec<u8>,
}

impl DocumentParts {
    fn of(
        kind: RecordKind,
        id: Uuid,
        document: &Automerge,
        before: &[ChangeHash],
    ) -> Result<DocumentParts> {
        let record = TypedRecord::read(kind, id, document)?;
        Ok(DocumentParts {
            record,
            stored: codec::encode(id, document)?.stored,
            heads: document.get_heads(),
            concurrent: concurrent_of(kind, document),
            new_changes: codec::new_change_hashes(document, before),
        })
    }
}

/// Writes what `DocumentParts::of` worked out of `document`.
#[allow(clippy::too_many_arguments)]
fn write_document(
    tx: &Transaction,
    ctx: &WriteContext,
    cache: &ReferenceCache,
    id: Uuid,
    kind: RecordKind,
    rowid: Option<i64>,
    document: Option<&Automerge>,
    parts: DocumentParts,
) -> Result<i64> {
    let (origin, author) = (ctx.origin, ctx.author);
    let DocumentParts {
        mut record,
        stored: bytes,
        heads,
        concurrent,
        new_changes,
    } = parts;
    // Index rows, alerts and the outbox's urgency follow the record's values, whatever
    // derivation the document holds (a merge or a resolution does not write one), with the
    // reference data in force in this transaction. A reference document derives nothing: the
    // data is not reloaded for each one a first sync brings (each changes what is in force).
    if kind != RecordKind::Reference {
        record.derive_stored(&reference_in(cache, tx), &heads, &concurrent);
    }
    tx.prepare_cached(
        "INSERT INTO change_log (record_id, kind, changes, device_id, origin, at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        id.as_bytes(),
        kind as i64,
        new_changes,
        author.map(|a| a.device.as_bytes().to_vec()),
        origin as i64,
        Utc::now().timestamp_millis()
    ])?;
    let seq = tx.last_insert_rowid();
    if ctx.on_device {
        // A hub answers pulls and erasures from its change log; a device reads nothing of its
        // own but the order of its writes (`last_change`, a record's `last_seq`). The row goes
        // at once: AUTOINCREMENT never hands out a position again, and a device keeps some
        // 100 bytes less per record.
        tx.prepare_cached("DELETE FROM change_log WHERE seq = ?1")?
            .execute([seq])?;
    }
    let (rowid, fresh) = match rowid {
        Some(rowid) => {
            if ctx.on_device {
                sync_state::keep_hub_heads_before_edit(tx, rowid)?;
            }
            tx.prepare_cached(
                "UPDATE records SET doc = ?2, heads = ?3, last_seq = ?4 WHERE rowid = ?1",
            )?
            .execute(params![rowid, bytes, codec::heads_bytes(&heads), seq])?;
            (rowid, false)
        }
        None => {
            tx.prepare_cached(
                "INSERT INTO records (id, kind, doc, heads, last_seq) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                id.as_bytes(),
                kind as i64,
                bytes,
                codec::heads_bytes(&heads),
                seq
            ])?;
            (tx.last_insert_rowid(), true)
        }
    };
    if !fresh {
        index::delete_rows(tx, rowid)?;
    }
    let also_named = document
        .map(|d| doc::concurrent_texts(d, "name"))
        .unwrap_or_default();
    index::insert_rows(tx, rowid, record.indexed(&concurrent), &also_named)?;
    let manifest = document.map(doc::attachments).unwrap_or_default();
    // A new record holds no attachment row yet: with no manifest, there is nothing to follow.
    let urgency = record.urgency(&concurrent);
    if !(fresh && manifest.is_empty()) {
        attachments::follow_manifest(tx, id, kind, &manifest, urgency)?;
    }
    if ctx.queue_for_hub {
        sync_state::queue_for_hub(tx, id, urgency)?;
    }
    // On a device, a reference document received may be a version a record was captured
    // with, or answered, that it lacked: the records it derives are indexed again (a case's
    // classification by a profile, a visit's breaches by a checklist: a visit brought by a
    // peer before its checklist). Without such a record there is nothing to derive again, and
    // the data is not reloaded for each of the reference documents a first sync brings
    // (reference data comes first).
    if kind == RecordKind::Reference && ctx.on_device {
        let derived = match document.and_then(doc::reference_type_of) {
            Some(ReferenceType::Checklist) => RecordKind::Visit,
            _ => RecordKind::ChildCase,
        };
        if holds(tx, derived)? {
            index_again(tx, &reference_in(cache, tx), Some(derived), None)?;
        }
    }
    Ok(rowid)
}

fn holds(tx: &Transaction, kind: RecordKind) -> Result<bool> {
    Ok(tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM records WHERE kind = ?1)")?
        .query_row([kind as i64], |r| r.get(0))?)
}

/// Derives a stored record's fields as it is read or indexed: as any write does, unless the
/// document has several heads (`Record::derive_merged`).
pub(crate) fn derive_stored<R: Record>(
    record: &mut R,
    reference: &ReferenceData,
    heads: &[ChangeHash],
    concurrent: &[Concurrent],
) {
    if heads.len() > 1 {
        record.derive_merged(reference);
    } else {
        record.derive(reference);
    }
    if !concurrent.is_empty() {
        record.derive_in_conflict(reference, concurrent);
    }
}

/// The fields of a record of `kind` deciding a derived field that hold values side by side
/// in `document` (`doc::concurrent_deciding`).
pub(crate) fn concurrent_of(kind: RecordKind, document: &Automerge) -> Vec<Concurrent> {
    match kind {
        RecordKind::Workplace => doc::concurrent_deciding::<Workplace>(document),
        RecordKind::Visit => doc::concurrent_deciding::<Visit>(document),
        RecordKind::ChildCase => doc::concurrent_deciding::<ChildCase>(document),
        RecordKind::User | RecordKind::Reference => Vec::new(),
    }
}

/// Rebuilds the index rows of one record from its document.
fn index_document(
    tx: &Transaction,
    rowid: i64,
    kind: RecordKind,
    id: Uuid,
    document: &Automerge,
    reference: &ReferenceData,
) -> Result<()> {
    let mut record = TypedRecord::read(kind, id, document)?;
    let concurrent = concurrent_of(kind, document);
    record.derive_stored(reference, &document.get_heads(), &concurrent);
    index::delete_rows(tx, rowid)?;
    let also_named = doc::concurrent_texts(document, "name");
    index::insert_rows(tx, rowid, record.indexed(&concurrent), &also_named)
}

/// A document read as the record of its kind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TypedRecord {
    Workplace(Workplace),
    Visit(Visit),
    ChildCase(ChildCase),
    User(User),
    /// Read whole, to check it is one, but nothing is indexed from it.
    Reference,
}

impl TypedRecord {
    /// The record a document's JSON (`doc::to_json`) holds, at `heads`.
    fn from_json(
        kind: RecordKind,
        id: Uuid,
        json: serde_json::Value,
        heads: Vec<ChangeHash>,
    ) -> Result<TypedRecord> {
        Ok(match kind {
            RecordKind::Workplace => {
                TypedRecord::Workplace(doc::record_from_json(json, id, heads)?)
            }
            RecordKind::Visit => TypedRecord::Visit(doc::record_from_json(json, id, heads)?),
            RecordKind::ChildCase => {
                TypedRecord::ChildCase(doc::record_from_json(json, id, heads)?)
            }
            RecordKind::User => TypedRecord::User(doc::record_from_json(json, id, heads)?),
            RecordKind::Reference => {
                doc::record_from_json::<ReferenceDocument>(json, id, heads)?;
                TypedRecord::Reference
            }
        })
    }

    /// `from_json`, read straight from a checked document's values (`doc::record_from_values`).
    fn from_values(
        kind: RecordKind,
        id: Uuid,
        root: &codec::columns::Root,
        heads: Vec<ChangeHash>,
    ) -> Option<TypedRecord> {
        Some(match kind {
            RecordKind::Workplace => {
                TypedRecord::Workplace(doc::record_from_values(root, id, heads)?)
            }
            RecordKind::Visit => TypedRecord::Visit(doc::record_from_values(root, id, heads)?),
            RecordKind::ChildCase => {
                TypedRecord::ChildCase(doc::record_from_values(root, id, heads)?)
            }
            RecordKind::User => TypedRecord::User(doc::record_from_values(root, id, heads)?),
            RecordKind::Reference => {
                doc::record_from_values::<ReferenceDocument>(root, id, heads)?;
                TypedRecord::Reference
            }
        })
    }

    pub(crate) fn read(kind: RecordKind, id: Uuid, document: &Automerge) -> Result<TypedRecord> {
        Ok(match kind {
            RecordKind::Workplace => TypedRecord::Workplace(doc::read_record(document, id)?),
            RecordKind::Visit => TypedRecord::Visit(doc::read_record(document, id)?),
            RecordKind::ChildCase => TypedRecord::ChildCase(doc::read_record(document, id)?),
            RecordKind::User => TypedRecord::User(doc::read_record(document, id)?),
            RecordKind::Reference => {
                doc::read_record::<ReferenceDocument>(document, id)?;
                TypedRecord::Reference
            }
        })
    }

    /// `settled_values` of two records of one kind (nothing to judge otherwise).
    pub(crate) fn settled(
        document: &Automerge,
        heads: (&[ChangeHash], &[ChangeHash]),
        from: &TypedRecord,
        to: &TypedRecord,
    ) -> Settled<TypedRecord> {
        fn typed<R: Record>(
            settled: Settled<R>,
            wrap: fn(R) -> TypedRecord,
        ) -> Settled<TypedRecord> {
            Settled {
                steps: settled.steps,
                from: wrap(settled.from),
                overridden: settled.overridden,
            }
        }
        match (from, to) {
            (TypedRecord::Workplace(f), TypedRecord::Workplace(t)) => typed(
                settled_values(document, heads, f, t),
                TypedRecord::Workplace,
            ),
            (TypedRecord::Visit(f), TypedRecord::Visit(t)) => {
                typed(settled_values(document, heads, f, t), TypedRecord::Visit)
            }
            (TypedRecord::ChildCase(f), TypedRecord::ChildCase(t)) => typed(
                settled_values(document, heads, f, t),
                TypedRecord::ChildCase,
            ),
            _ => Settled {
                steps: Vec::new(),
                from: from.clone(),
                overridden: Vec::new(),
            },
        }
    }

    /// The record as JSON, as a document holds its fields (none for reference data, which
    /// only the hub writes).
    pub(crate) fn to_json(&self) -> Option<serde_json::Value> {
        match self {
            TypedRecord::Workplace(r) => serde_json::to_value(r).ok(),
            TypedRecord::Visit(r) => serde_json::to_value(r).ok(),
            TypedRecord::ChildCase(r) => serde_json::to_value(r).ok(),
            TypedRecord::User(r) => serde_json::to_value(r).ok(),
            TypedRecord::Reference => None,
        }
    }

    /// What its index rows are written from, `concurrent` its deciding fields' values side by
    /// side (`concurrent_of`).
    fn indexed(&self, concurrent: &[Concurrent]) -> index::Indexed<'_> {
        match self {
            TypedRecord::Workplace(r) => index::Indexed::Workplace(r),
            TypedRecord::Visit(r) => index::Indexed::Visit(r, r.due_in_conflict(concurrent)),
            TypedRecord::ChildCase(r) => {
                let alert = derived::case_alert_in_conflict(r, concurrent);
                index::Indexed::ChildCase(r, r.adult_on_in_conflict(concurrent), alert)
            }
            TypedRecord::User(r) => index::Indexed::User(r),
            TypedRecord::Reference => index::Indexed::Reference,
        }
    }

    /// Its place in the outbox: the severity of the alert its rows raise (a case's by the most
    /// worrying reading of values side by side, as `indexed`), 0 when not urgent.
    fn urgency(&self, concurrent: &[Concurrent]) -> i64 {
        match self {
            // By what the visit itself records: the cases opened on it are other records.
            TypedRecord::Visit(v) => derived::visit_severity(v, false).map_or(0, |s| s as i64),
            TypedRecord::ChildCase(c) => {
                derived::case_alert_in_conflict(c, concurrent).map_or(0, |(s, _)| s as i64)
            }
            TypedRecord::Workplace(_) | TypedRecord::User(_) | TypedRecord::Reference => 0,
        }
    }

    /// The record the document held at `heads` (see `doc::read_record_at`).
    pub(crate) fn read_at(
        kind: RecordKind,
        id: Uuid,
        document: &Automerge,
        heads: &[ChangeHash],
    ) -> Result<TypedRecord> {
        Ok(match kind {
            RecordKind::Workplace => {
                TypedRecord::Workplace(doc::read_record_at(document, id, heads)?)
            }
            RecordKind::Visit => TypedRecord::Visit(doc::read_record_at(document, id, heads)?),
            RecordKind::ChildCase => {
                TypedRecord::ChildCase(doc::read_record_at(document, id, heads)?)
            }
            RecordKind::User => TypedRecord::User(doc::read_record_at(document, id, heads)?),
            RecordKind::Reference => {
                doc::read_record_at::<ReferenceDocument>(document, id, heads)?;
                TypedRecord::Reference
            }
        })
    }

    /// Computes the derived fields of the record of a document with `heads` from its values
    /// (`derive_stored`).
    pub(crate) fn derive_stored(
        &mut self,
        reference: &ReferenceData,
        heads: &[ChangeHash],
        concurrent: &[Concurrent],
    ) {
        match self {
            TypedRecord::Workplace(r) => derive_stored(r, reference, heads, concurrent),
            TypedRecord::Visit(r) => derive_stored(r, reference, heads, concurrent),
            TypedRecord::ChildCase(r) => derive_stored(r, reference, heads, concurrent),
            TypedRecord::User(r) => derive_stored(r, reference, heads, concurrent),
            TypedRecord::Reference => {}
        }
    }

    /// The record's own validation, excusing what `before` broke already in a field this
    /// record leaves as it was (`records::validate_beside`).
    pub(crate) fn validate_beside(
        &self,
        before: Option<&TypedRecord>,
        reference: &ReferenceData,
    ) -> Result<(), ValidationError> {
        use crate::domain::records::validate_beside;
        match (self, before) {
            (TypedRecord::Workplace(r), Some(TypedRecord::Workplace(b))) => {
                validate_beside(r, Some(b), |r| r.validate(reference))
            }
            (TypedRecord::Visit(r), Some(TypedRecord::Visit(b))) => {
                validate_beside(r, Some(b), |r| r.validate(reference))
            }
            (TypedRecord::ChildCase(r), Some(TypedRecord::ChildCase(b))) => {
                validate_beside(r, Some(b), |r| r.validate(reference))
            }
            (TypedRecord::User(r), Some(TypedRecord::User(b))) => {
                validate_beside(r, Some(b), |r| r.validate(reference))
            }
            _ => self.validate(reference),
        }
    }

    /// The record's own validation (`Record::validate`).
    pub(crate) fn validate(&self, reference: &ReferenceData) -> Result<(), ValidationError> {
        match self {
            TypedRecord::Workplace(r) => r.validate(reference),
            TypedRecord::Visit(r) => r.validate(reference),
            TypedRecord::ChildCase(r) => r.validate(reference),
            TypedRecord::User(r) => r.validate(reference),
            TypedRecord::Reference => Ok(()),
        }
    }

    /// The reference versions the record was captured with, for kinds that keep them.
    pub(crate) fn pins(&self) -> Option<&ReferencePins> {
        match self {
            TypedRecord::Workplace(r) => r.pins(),
            TypedRecord::Visit(r) => r.pins(),
            TypedRecord::ChildCase(r) => r.pins(),
            TypedRecord::User(_) | TypedRecord::Reference => None,
        }
    }

    /// The record as the role matrix sees it (`rights`).
    pub(crate) fn subject(&self) -> Subject<'_> {
        match self {
            TypedRecord::Workplace(r) => Subject::Workplace(r),
            TypedRecord::Visit(r) => Subject::Visit(r),
            TypedRecord::ChildCase(r) => Subject::ChildCase(r),
            TypedRecord::User(_) => Subject::Administered(RecordKind::User),
            TypedRecord::Reference => Subject::Administered(RecordKind::Reference),
        }
    }

    /// `Record::references` of the record.
    pub(crate) fn references(&self) -> Vec<crate::domain::records::Reference> {
        match self {
            TypedRecord::Workplace(r) => r.references(),
            TypedRecord::Visit(r) => r.references(),
            TypedRecord::ChildCase(r) => r.references(),
            TypedRecord::User(_) | TypedRecord::Reference => Vec::new(),
        }
    }

    /// `Record::free_texts` of the record.
    pub(crate) fn free_texts(&self) -> Vec<(String, &str)> {
        match self {
            TypedRecord::Workplace(r) => r.free_texts(),
            TypedRecord::Visit(r) => r.free_texts(),
            TypedRecord::ChildCase(r) => r.free_texts(),
            TypedRecord::User(_) | TypedRecord::Reference => Vec::new(),
        }
    }

    /// `Record::event_dates` of the record.
    pub(crate) fn event_dates(&self) -> Vec<(String, chrono::NaiveDate)> {
        match self {
            TypedRecord::Workplace(r) => r.event_dates(),
            TypedRecord::Visit(r) => r.event_dates(),
            TypedRecord::ChildCase(r) => r.event_dates(),
            TypedRecord::User(_) | TypedRecord::Reference => Vec::new(),
        }
    }

    /// The area the record belongs to (users and reference data have none).
    pub(crate) fn area(&self) -> Option<&Area> {
        match self {
            TypedRecord::Workplace(r) => Some(&r.location.area),
            TypedRecord::Visit(r) => Some(&r.area),
            TypedRecord::ChildCase(r) => Some(&r.area),
            TypedRecord::User(_) | TypedRecord::Reference => None,
        }
    }
}

/// Rebuilds the index rows of the records `which` names from the documents (used by
/// migrations that change what the rows hold), with the derived fields computed from the
/// values and `base` under the published reference data. The documents are read a batch at a
/// time: a region's phone holds 150 MB of them.
pub(crate) fn reindex(
    tx: &Transaction,
    base: &ReferenceData,
    which: crate::store::schema::Rederive,
) -> Result<()> {
    use crate::store::schema::Rederive;
    let mut reference = base.clone();
    let mut source = StoredReference(tx);
    let ids: Vec<Uuid> = source.listing()?.into_iter().map(|(id, _)| id).collect();
    doc::add_published(&mut reference, &ids, &mut |id| source.document(id))?;
    match which {
        Rederive::Kind(kind) => index_again(tx, &reference, kind, None),
        Rederive::NamesWith(letters) => {
            // Their rows first, in one pass over the names: the names index has no order to
            // walk them by.
            let rows: Vec<i64> = tx
                .prepare(
                    "SELECT rowid FROM name_search WHERE name GLOB ?1 OR terms GLOB ?1
                     ORDER BY rowid",
                )?
                .query_map([format!("*[{letters}]*")], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            index_again(tx, &reference, None, Some(&rows))
        }
    }
}

/// Rebuilds the index rows of every record, or of every record of `kind`, or of the records at
/// `rows`, under `reference`, reading the documents a batch at a time.
fn index_again(
    tx: &Transaction,
    reference: &ReferenceData,
    kind: Option<RecordKind>,
    rows: Option<&[i64]>,
) -> Result<()> {
    const BATCH: i64 = 256;
    let mut after = 0;
    let mut named = rows.map(|rows| rows.chunks(BATCH as usize));
    loop {
        let read = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?));
        let batch: Vec<(i64, Vec<u8>, i64, Vec<u8>)> = match named.as_mut() {
            Some(chunks) => {
                let Some(chunk) = chunks.next() else {
                    return Ok(());
                };
                let mut statement =
                    tx.prepare_cached("SELECT rowid, id, kind, doc FROM records WHERE rowid = ?1")?;
                let mut batch = Vec::with_capacity(chunk.len());
                for rowid in chunk {
                    batch.extend(statement.query_row([rowid], read).optional()?);
                }
                batch
            }
            None => tx
                .prepare_cached(
                    "SELECT rowid, id, kind, doc FROM records
                     WHERE rowid > ?1 AND (?2 IS NULL OR kind = ?2) ORDER BY rowid LIMIT ?3",
                )?
                .query_map(params![after, kind.map(|k| k as i64), BATCH], read)?
                .collect::<rusqlite::Result<_>>()?,
        };
        let Some((last, ..)) = batch.last() else {
            match named {
                Some(_) => continue,
                None => return Ok(()),
            }
        };
        after = *last;
        for (rowid, id, kind, bytes) in batch {
            let id = Uuid::from_slice(&id).map_err(|_| Error::DamagedDocument {
                id: Uuid::nil(),
                reason: "a record id is not 16 bytes".into(),
            })?;
            let kind = RecordKind::from_i64(kind).ok_or_else(|| Error::DamagedDocument {
                id,
                reason: "unknown record kind in the store".into(),
            })?;
            let document = codec::load_stored(id, bytes)?;
            index_document(tx, rowid, kind, id, &document, reference)?;
        }
    }
}

/// What merging received bytes did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Merged {
    pub changed: bool,
    /// False when some received changes wait for earlier ones that did not arrive.
    pub complete: bool,
    /// The record was not in the store before: it now holds exactly what was received.
    pub created: bool,
    pub heads: Vec<ChangeHash>,
    /// The heads the record had here before, when what arrived made this child case a merged
    /// duplicate (`features::duplicates::carry_over`).
    pub merged_away: Option<Vec<ChangeHash>>,
}

impl Merged {
    /// Nothing was written: the bytes brought nothing new, or belong to an erased record.
    fn unchanged(complete: bool, heads: Vec<ChangeHash>) -> Merged {
        Merged {
            changed: false,
            complete,
            created: false,
            heads,
            merged_away: None,
        }
    }
}

/// Merges received bytes into a record's document, in the caller's transaction. Anything that
/// fails to decode, or does not read as a record of the kind it claims, is refused with nothing
/// stored (the caller abandons its transaction).
pub(crate) fn merge_document(
    tx: &Transaction,
    ctx: &WriteContext,
    cache: &ReferenceCache,
    actor: &ActorId,
    id: Uuid,
    bytes: &[u8],
) -> Result<Merged> {
    if erasure::is_erased(tx, id)? {
        // An old copy of an erased record: it does not come back.
        return Ok(Merged::unchanged(true, Vec::new()));
    }
    merge_over(tx, (ctx, cache), actor, id, bytes, true)
}

/// How a write that settles values side by side is judged (`rights::Settling`): the steps it
/// takes from the values it overrides, beside its own, and the record its own steps are judged
/// from.
pub(crate) struct Settled<R> {
    pub steps: Vec<crate::domain::rights::Step>,
    pub from: R,
    /// The values overridden, each device's (`doc::overridden_values`).
    pub overridden: Vec<doc::Overridden>,
}

/// `Settled` of a write that made `to` of `from`, the record at `base` (the version it was made
/// on), `to` being the record at `theirs`, in `document`.
pub(crate) fn settled_values<R: Record>(
    document: &Automerge,
    (base, theirs): (&[ChangeHash], &[ChangeHash]),
    from: &R,
    to: &R,
) -> Settled<R> {
    use crate::domain::rights::{self, Settling};
    let mut settled = Settled {
        steps: Vec::new(),
        from: from.clone(),
        overridden: Vec::new(),
    };
    if matches!(R::KIND, RecordKind::Reference | RecordKind::User) {
        return settled;
    }
    settled.overridden = doc::overridden_values(document, base, theirs);
    let steps_from = |reading: Option<R>| match reading {
        Some(reading) => rights::steps(Some(reading.subject()), to.subject()),
        None => Vec::new(),
    };
    for values in &settled.overridden {
        let fields = values.iter().filter_map(|(path, _)| path.first());
        match rights::settling(fields.map(String::as_str), to.subject()) {
            Settling::Review { step, fields }
                if doc::decision_side_by_side(document, (base, theirs), fields) =>
            {
                settled.steps.push(step);
                if let Some(reading) = doc::with_fields_of(&settled.from, to, fields) {
                    settled.from = reading;
                }
            }
            Settling::Superseded { fields } => {
                let reading = doc::overridden_reading(from, values)
                    .and_then(|reading| doc::with_fields_of(&reading, to, &fields[1..]));
                settled.steps.extend(steps_from(reading));
            }
            Settling::Review { .. } | Settling::Values => {
                settled
                    .steps
                    .extend(steps_from(doc::overridden_reading(from, values)));
            }
        }
    }
    settled
}

/// `merge_document` into nothing: the stored record replaced by the received document whole
/// (`receive::merge_received`, for reference data a restored hub published again).
pub(crate) fn replace_document(
    tx: &Transaction,
    ctx: &WriteContext,
    cache: &ReferenceCache,
    actor: &ActorId,
    id: Uuid,
    bytes: &[u8],
) -> Result<Merged> {
    merge_over(tx, (ctx, cache), actor, id, bytes, false)
}

/// The received bytes merged into the stored document (`onto_stored`), or into nothing, and
/// written in the record's row.
fn merge_over(
    tx: &Transaction,
    (ctx, cache): (&WriteContext, &ReferenceCache),
    actor: &ActorId,
    id: Uuid,
    bytes: &[u8],
    onto_stored: bool,
) -> Result<Merged> {
    let row = find_row(tx, id)?;
    let stored = row
        .as_ref()
        .filter(|_| onto_stored)
        .map(|(_, _, stored)| &stored[..]);
    let prepared = prepare_merge(id, stored, bytes, actor);
    commit_merge(
        tx,
        ctx,
        cache,
        id,
        row.map(|(rowid, kind, _)| (rowid, kind)),
        prepared,
    )
}

/// The part of a merge that needs no store: the received bytes merged into the record's
/// document (`existing`, Automerge bytes), checked, read as its record and encoded.
pub(crate) struct PreparedMerge {
    /// The merged document; `None` when it was checked without loading it (it holds no
    /// attachment, the one thing written from the loaded document).
    document: Option<Automerge>,
    /// Where the received history starts (an erased record's content does not come back).
    roots: Vec<ChangeHash>,
    complete: bool,
    heads: Vec<ChangeHash>,
    /// Kinds the merged document names (when its heads moved).
    kinds: Vec<RecordKind>,
    /// What is written, when the heads moved.
    written: Option<Result<(RecordKind, DocumentParts)>>,
    /// The heads before, when the merge made a held child case a merged duplicate.
    merged_away: Option<Vec<ChangeHash>>,
}

/// Works out a merge without the store (`merge_document` writes it with `commit_merge`).
fn prepare_merge(
    id: Uuid,
    existing: Option<&[u8]>,
    bytes: &[u8],
    actor: &ActorId,
) -> Result<PreparedMerge> {
    if existing.is_none()
        && let Some(prepared) = prepare_whole_document(id, bytes)
    {
        return Ok(prepared);
    }
    let mut document = match existing {
        Some(stored) => doc::load(id, stored)?,
        None => Automerge::new(),
    }
    .with_actor(actor.clone());
    let before = document.get_heads();
    codec::merge_into(&mut document, id, bytes)?;
    let roots = codec::history_roots(&document, &before);
    let complete = document.get_missing_deps(&[]).is_empty();
    let heads = document.get_heads();
    let (kinds, written) = if heads == before {
        (Vec::new(), None)
    } else {
        let written = (|| {
            let kind = doc::kind_of(&document).ok_or_else(|| Error::DamagedDocument {
                id,
                reason: "the received document names no record kind, or is another record's".into(),
            })?;
            // Indexing reads the document as a record of its kind: if it does not read, the
            // error abandons the transaction. The document is encoded anew rather than stored
            // as received: Automerge accepts incrementally some bytes that it refuses to load
            // whole.
            let parts = DocumentParts::of(kind, id, &document, &before)?;
            Ok((kind, parts))
        })();
        (doc::kinds(&document), Some(written))
    };
    // Only a held record can become a duplicate here, and `merged_into` is read at the old
    // heads (the costlier read) only when the document now names a case.
    let merged_away = (!before.is_empty()
        && heads != before
        && doc::merged_into_of(&document, None).is_some()
        && doc::merged_into_of(&document, Some(&before)).is_none())
    .then_some(before);
    Ok(PreparedMerge {
        document: Some(document),
        roots,
        complete,
        heads,
        kinds,
        written,
        merged_away,
    })
}

/// `prepare_merge` for a record the store lacks, when the bytes are one whole document:
/// - read and checked without Automerge (`codec::columns::read_checked`), when it holds only
///   what the reader takes and no attachment (whose manifest is read from the loaded document,
///   with its values' types): its history is rebuilt and hashed, as loading it would;
/// - otherwise read by `codec::columns` and loaded by Automerge, when the reader takes it.
///
/// Either way the bytes are stored as received, and the values are bounded as they are read.
/// `None` otherwise: `prepare_merge` then merges the bytes as any others, and gives its answer
/// or its error.
fn prepare_whole_document(id: Uuid, bytes: &[u8]) -> Option<PreparedMerge> {
    let limits = codec::bounds::DocumentLimits::STANDARD;
    if let Some(checked) = codec::columns::read_checked(bytes, &limits, |root, history| {
        read_values(id, root, history)
    }) && let Some(prepared) = prepare_checked(id, bytes, checked)
    {
        return Some(prepared);
    }
    let json = codec::columns::read(bytes, &limits)?;
    let document = codec::load_whole(id, bytes).ok()?;
    let kind = doc::kind_of(&document)?;
    let heads = document.get_heads();
    let parts = DocumentParts {
        record: TypedRecord::from_json(kind, id, json, heads.clone()).ok()?,
        stored: codec::encode_plain(id, bytes).ok()?,
        heads: heads.clone(),
        concurrent: concurrent_of(kind, &document),
        new_changes: codec::new_change_hashes(&document, &[]),
    };
    Some(PreparedMerge {
        roots: codec::history_roots(&document, &[]),
        complete: document.get_missing_deps(&[]).is_empty(),
        heads,
        kinds: vec![kind],
        written: Some(Ok((kind, parts))),
        document: Some(document),
        merged_away: None,
    })
}

/// The record a document checked without Automerge holds, with its kind, read straight from
/// its values: `None` if it holds attachments (their manifest is read from the loaded
/// document, with its values' types) or does not read as a record this way.
fn read_values(
    id: Uuid,
    root: &codec::columns::Root,
    history: &codec::columns::History,
) -> Option<(RecordKind, TypedRecord)> {
    // Attachments follow their manifest, a name in conflict is searched under each of its
    // values, and a case is classified by every value of a deciding field in conflict
    // (`Record::derive_in_conflict`), a visit due by every day planned side by side
    // (`Visit::due_in_conflict`): all read from the document itself.
    if doc::values_name_attachments(root)
        || root.in_conflict("name")
        || ChildCase::DECIDING.iter().any(|key| root.in_conflict(key))
        || Visit::DECIDING.iter().any(|key| root.in_conflict(key))
    {
        return None;
    }
    let kind = doc::kind_of_values(root)?;
    // So is its alert, its due date and its closing by every value of a follow-up's.
    if kind == RecordKind::ChildCase
        && ChildCase::NESTED_DECIDING
            .iter()
            .any(|(key, fields)| root.entries_in_conflict(key, fields))
    {
        return None;
    }
    let record = TypedRecord::from_values(kind, id, root, history.heads.clone())?;
    Some((kind, record))
}

/// A document checked without Automerge, and its record with its kind if it was read.
type CheckedRecord = codec::columns::CheckedDocument<(RecordKind, TypedRecord)>;

/// `prepare_whole_document` for a document read and checked without Automerge: `None` if its
/// record was not read (`read_values`).
fn prepare_checked(id: Uuid, bytes: &[u8], checked: CheckedRecord) -> Option<PreparedMerge> {
    let limits = codec::bounds::DocumentLimits::STANDARD;
    let (kind, record) = checked.value?;
    codec::bounds::admit(bytes, &limits).ok()?;
    let history = checked.history;
    let parts = DocumentParts {
        record,
        stored: codec::encode_plain(id, bytes).ok()?,
        heads: history.heads.clone(),
        // `read_values` took no record with a deciding field in conflict.
        concurrent: Vec::new(),
        new_changes: history.changes.iter().flat_map(|c| c.0).collect(),
    };
    Some(PreparedMerge {
        roots: history.roots,
        complete: true,
        heads: history.heads,
        kinds: vec![kind],
        written: Some(Ok((kind, parts))),
        document: None,
        merged_away: None,
    })
}

/// `prepare_merge` for received bytes; a document a hub sent without its heads
/// (`codec::columns::strip_heads`), when `headless` says this exchange allows it, is made whole
/// again first, read and checked in the same pass when the column reader takes it.
pub(crate) fn prepare_received(
    id: Uuid,
    existing: Option<&[u8]>,
    bytes: &[u8],
    actor: &ActorId,
    headless: bool,
) -> Result<PreparedMerge> {
    if !sent_headless(bytes, headless) {
        return prepare_merge(id, existing, bytes, actor);
    }
    let (whole, checked) = made_whole(id, bytes, existing.is_none())?;
    if existing.is_none()
        && let Some(checked) = checked
        && let Some(prepared) = prepare_checked(id, &whole, checked)
    {
        return Ok(prepared);
    }
    prepare_merge(id, existing, &whole, actor)
}

/// A received document as `merge_document` takes it: whole again if a hub sent it without its
/// heads and `headless` says this exchange allows it.
pub(crate) fn whole_document(id: Uuid, bytes: &[u8], headless: bool) -> Result<Cow<'_, [u8]>> {
    if !sent_headless(bytes, headless) {
        return Ok(Cow::Borrowed(bytes));
    }
    Ok(Cow::Owned(made_whole(id, bytes, false)?.0))
}

/// Whether received bytes are a document sent without its heads, in an exchange that allows it
/// (a hub's answer to a device that works them out; never a peer's or a bundle's).
fn sent_headless(bytes: &[u8], headless: bool) -> bool {
    headless && codec::columns::is_headless(bytes)
}

/// A document sent without its heads, whole again: by the column reader, which checks it in
/// the same pass (and reads its record, if `read_record`), or by Automerge for a document the
/// reader leaves.
fn made_whole(
    id: Uuid,
    bytes: &[u8],
    read_record: bool,
) -> Result<(Vec<u8>, Option<CheckedRecord>)> {
    let limits = codec::bounds::DocumentLimits::STANDARD;
    let read = |root: &codec::columns::Root, history: &codec::columns::History| {
        read_record
            .then(|| read_values(id, root, history))
            .flatten()
    };
    Ok(match codec::columns::restore_heads(bytes, &limits, read) {
        Some((whole, checked)) => (whole, Some(checked)),
        None => (codec::load_headless(id, bytes)?, None),
    })
}

/// Writes a merge `prepare_merge` worked out, in the caller's transaction; `existing` is the
/// row the merge started from (its rowid and kind). The checks that need the store (erasures)
/// come first, then the merge's own errors.
pub(crate) fn commit_merge(
    tx: &Transaction,
    ctx: &WriteContext,
    cache: &ReferenceCache,
    id: Uuid,
    existing: Option<(i64, RecordKind)>,
    prepared: Result<PreparedMerge>,
) -> Result<Merged> {
    let prepared = prepared?;
    if erasure::knows_erasures(tx)? && erasure::any_erased_change(tx, &prepared.roots)? {
        // An erased record's content, under this id or another: it does not come back.
        return Ok(Merged::unchanged(true, Vec::new()));
    }
    let PreparedMerge {
        document,
        complete,
        heads,
        kinds,
        written,
        merged_away,
        ..
    } = prepared;
    let Some(written) = written else {
        return Ok(Merged::unchanged(complete, heads));
    };
    if let Some((_, stored)) = existing
        && let Some(other) = kinds.iter().find(|k| **k != stored)
    {
        return Err(Error::WrongKind {
            id,
            expected: stored,
            actual: *other,
        });
    }
    let (kind, parts) = written?;
    write_document(
        tx,
        ctx,
        cache,
        id,
        kind,
        existing.map(|(rowid, _)| rowid),
        document.as_ref(),
        parts,
    )?;
    Ok(Merged {
        changed: true,
        complete,
        created: existing.is_none(),
        heads,
        merged_away,
    })
}

/// The reference data in force, as `conn` sees it (a write's transaction: a record merged after
/// a reference document in one transaction is derived with it). A store that cannot be read
/// now fails on its next write; until then, the data last loaded is the best answer.
pub(crate) fn reference_in(cache: &ReferenceCache, conn: &Connection) -> Arc<ReferenceData> {
    match reference_marker(conn) {
        Ok(marker) => cache
            .get(marker, &mut StoredReference(conn))
            .unwrap_or_else(|_| cache.last()),
        Err(_) => cache.last(),
    }
}

/// See `ReferenceMarker`. `kind = 5` is spelled out so that SQLite uses the partial index
/// `records_reference` (schema 7).
pub(crate) fn reference_marker(conn: &Connection) -> Result<ReferenceMarker> {
    Ok(conn
        .prepare_cached("SELECT count(*), coalesce(max(last_seq), 0) FROM records WHERE kind = 5")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?)
}

/// The reference documents of an embedded store.
pub(crate) struct StoredReference<'c>(pub &'c Connection);

impl ReferenceSource for StoredReference<'_> {
    fn listing(&mut self) -> Result<Vec<(Uuid, i64)>> {
        let mut stmt = self
            .0
            .prepare_cached("SELECT id, last_seq FROM records WHERE kind = 5")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?;
        let mut listing = Vec::new();
        for row in rows {
            let (id, seq) = row?;
            if let Ok(id) = Uuid::from_slice(&id) {
                listing.push((id, seq));
            }
        }
        Ok(listing)
    }

    fn document(&mut self, id: Uuid) -> Result<Option<Vec<u8>>> {
        Ok(self
            .0
            .prepare_cached("SELECT doc FROM records WHERE id = ?1 AND kind = 5")?
            .query_row([id.as_bytes()], |r| r.get(0))
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::ChangeAuthor;
    use crate::domain::area::GeoPoint;
    use crate::domain::classify::Classification;
    use crate::domain::codes::{
        ClassificationOutcome, FollowUpSituation, Formality, ReferenceType, Role, ServiceKind, Sex,
        VisitAction, VisitKind, WorstForm,
    };
    use crate::domain::records::{FollowUp, Referral, User};
    use chrono::{FixedOffset, NaiveDate, TimeZone};

    fn date(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 5, day).unwrap()
    }

    /// Reads the stored reference documents, noting each one read.
    struct Counted<'c> {
        stored: StoredReference<'c>,
        read: Vec<Uuid>,
    }

    impl ReferenceSource for Counted<'_> {
        fn listing(&mut self) -> Result<Vec<(Uuid, i64)>> {
            self.stored.listing()
        }

        fn document(&mut self, id: Uuid) -> Result<Option<Vec<u8>>> {
            self.read.push(id);
            self.stored.document(id)
        }
    }

    /// A country's tree long enough to be published in parts (its districts' outlines).
    fn long_tree(label: &str) -> crate::domain::reference::ReferenceContent {
        use crate::domain::reference::{AreaNode, Labels, Outline};
        let districts = (1..=20)
            .map(|d| {
                let code = format!("CI-R1-D{d}");
                let community = AreaNode::new(
                    &format!("{code}-C01"),
                    Labels::fr_en("Village", "Village"),
                    vec![],
                );
                let mut district =
                    AreaNode::new(&code, Labels::fr_en(&code, &code), vec![community]);
                let ring = (0..Outline::MAX_POINTS)
                    .map(|i| {
                        let angle = i as f64 / Outline::MAX_POINTS as f64 * std::f64::consts::TAU;
                        let micro = |x: f64| (x * 1e6).round() / 1e6;
                        [
                            micro(-6.0 + d as f64 * 0.04 + 0.017_431 * angle.cos()),
                            micro(6.0 + 0.017_431 * angle.sin()),
                        ]
                    })
                    .collect();
                district.outline = Outline(vec![ring]);
                district
            })
            .collect();
        let region = AreaNode::new("CI-R1", Labels::fr_en("Région", "Region"), districts);
        crate::domain::reference::ReferenceContent::AdministrativeAreas(AreaNode::new(
            "CI",
            Labels::fr_en(label, label),
            vec![region],
        ))
    }

    #[test]
    fn reference_data_is_loaded_again_from_the_documents_new_since_the_last_load_only() {
        use crate::domain::records::ReferenceDocument;
        use crate::store::{Encryption, Store, StoreConfig, StoreRole};
        let dir = tempfile::TempDir::new().unwrap();
        let mut hub = Store::open(
            StoreConfig::new(
                dir.path().join("hub.db"),
                Encryption::Unencrypted,
                Uuid::now_v7(),
            )
            .role(StoreRole::Hub),
        )
        .unwrap();
        let base = ReferenceData::builtin();
        let cache = ReferenceCache::new(base.clone());
        let load = |hub: &Store, cache: &ReferenceCache| {
            let mut counted = Counted {
                stored: StoredReference(&hub.conn),
                read: Vec::new(),
            };
            let marker = reference_marker(&hub.conn).unwrap();
            let data = cache.get(marker, &mut counted).unwrap();
            (data, counted.read)
        };
        let from_scratch = |hub: &Store| load(hub, &ReferenceCache::new(base.clone())).0;
        let parts_of = |version: u32| -> Vec<Uuid> {
            (0..=3)
                .map(|part| {
                    ReferenceDocument::id_for_version(
                        ReferenceType::AdministrativeAreas,
                        "CI",
                        version,
                        part,
                    )
                })
                .collect()
        };

        assert_eq!(hub.publish_reference("CI", long_tree("v1")).unwrap(), 1);
        let (first, read) = load(&hub, &cache);
        assert_eq!(first, from_scratch(&hub));
        // Each of its parts, then each again to put them together.
        assert_eq!(read.len(), 4, "{read:?}");
        assert_eq!(
            first.latest_version(ReferenceType::AdministrativeAreas, "CI"),
            Some(1)
        );

        // A new version: only its own documents are read, and the data is what a load from
        // scratch gives (the old version's outlines dropped).
        assert_eq!(hub.publish_reference("CI", long_tree("v2")).unwrap(), 2);
        let (second, read) = load(&hub, &cache);
        assert!(!read.is_empty());
        assert!(read.iter().all(|id| parts_of(2).contains(id)), "{read:?}");
        assert_eq!(second, from_scratch(&hub));
        let old = second
            .area_tree_at(&crate::domain::reference::Pin::new("CI", 1))
            .unwrap();
        assert!(old.find("CI-R1-D3").unwrap().outline.is_empty());
        assert!(
            !second
                .area_tree("CI")
                .unwrap()
                .find("CI-R1-D3")
                .unwrap()
                .outline
                .is_empty()
        );
        let (again, read) = load(&hub, &cache);
        assert!(Arc::ptr_eq(&again, &second) && read.is_empty());

        // A version whose last part arrives after the others (a page of a sync ends between
        // them) comes into force when it does, reading that version's parts only.
        assert_eq!(hub.publish_reference("CI", long_tree("v3")).unwrap(), 3);
        let last_part = parts_of(3)[2];
        let held: (i64, Vec<u8>, Vec<u8>, i64) = hub
            .conn
            .query_row(
                "SELECT kind, doc, heads, last_seq FROM records WHERE id = ?1",
                [last_part.as_bytes()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        hub.conn
            .execute("DELETE FROM records WHERE id = ?1", [last_part.as_bytes()])
            .unwrap();
        let (partial, _) = load(&hub, &cache);
        assert_eq!(
            partial.latest_version(ReferenceType::AdministrativeAreas, "CI"),
            Some(2)
        );
        hub.conn
            .execute(
                "INSERT INTO records (id, kind, doc, heads, last_seq) VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![last_part.as_bytes(), held.0, held.1, held.2, held.3 + 1000],
            )
            .unwrap();
        let (third, read) = load(&hub, &cache);
        assert_eq!(
            third.latest_version(ReferenceType::AdministrativeAreas, "CI"),
            Some(3)
        );
        assert!(read.iter().all(|id| parts_of(3).contains(id)), "{read:?}");
        assert_eq!(third, from_scratch(&hub));

        // A document gone since the last load (a hub restored from a backup): all again.
        hub.conn
            .execute("DELETE FROM records WHERE id = ?1", [last_part.as_bytes()])
            .unwrap();
        let (fourth, read) = load(&hub, &cache);
        assert!(read.iter().any(|id| parts_of(1).contains(id)));
        assert_eq!(fourth, from_scratch(&hub));
        assert_eq!(
            fourth.latest_version(ReferenceType::AdministrativeAreas, "CI"),
            Some(2)
        );
    }

    /// A record's document: written on one replica, then edited on two at once (each field in
    /// `edits` gets a value on each, kept as a conflict), merged, saved as a hub saves it.
    fn document<R: Record + Clone>(record: &R, edit: impl Fn(&mut R, usize)) -> Vec<u8> {
        let author = ChangeAuthor {
            user: Uuid::now_v7(),
            device: Uuid::now_v7(),
        };
        let mut doc = Automerge::new().with_actor(ActorId::random());
        doc::write_record(&mut doc, record, &author).unwrap();
        let mut other = doc.fork().with_actor(ActorId::random());
        for (replica, doc) in [&mut doc, &mut other].into_iter().enumerate() {
            let mut edited: R = doc::read_record(doc, record.id()).unwrap();
            edit(&mut edited, replica);
            doc::write_record(doc, &edited, &author).unwrap();
        }
        doc.merge(&mut other).unwrap();
        doc.save_nocompress()
    }

    /// What a device stores of a whole document it lacks: read from its values when the column
    /// reader takes it, through Automerge and JSON otherwise; the same record either way.
    fn assert_read_as_automerge_reads_it(kind: RecordKind, id: Uuid, bytes: &[u8], direct: bool) {
        let loaded = Automerge::load(bytes).unwrap();
        let expected = TypedRecord::read(kind, id, &loaded).unwrap();
        let prepared = prepare_whole_document(id, bytes).expect("prepared");
        assert_eq!(
            prepared.document.is_none(),
            direct,
            "{kind:?} read from its values"
        );
        let (written_kind, parts) = prepared.written.unwrap().unwrap();
        assert_eq!((written_kind, parts.record), (kind, expected));
        assert_eq!(parts.heads, loaded.get_heads());
    }

    #[test]
    fn a_record_read_from_its_values_is_the_record_automerge_and_json_read() {
        let area = Area::new("CI", "CI-R1", "CI-R1-D1", "CI-R1-D1-C01");
        let person = Uuid::now_v7();

        let mut workplace =
            Workplace::new("Plantation Yao", "cocoa", Formality::Informal, area.clone());
        workplace.location.point = Some(GeoPoint {
            latitude: 6.8276,
            longitude: -5.2893,
            accuracy_m: None,
        });
        workplace.buyers.insert("Coopérative A".into());
        let bytes = document(&workplace, |w, replica| {
            w.notes = format!("Visite {replica}: séchage au soleil, 12 ans à peu près.");
            w.location.point.as_mut().unwrap().accuracy_m = Some(12.5 * replica as f64 - 1.0);
        });
        assert_read_as_automerge_reads_it(RecordKind::Workplace, workplace.id, &bytes, true);

        let started = FixedOffset::east_opt(0)
            .unwrap()
            .with_ymd_and_hms(2026, 5, 4, 8, 30, 0)
            .unwrap();
        let mut visit = Visit::new(VisitKind::LabourInspection, &workplace, person, started);
        visit.actions.insert(VisitAction::Warning);
        visit.follow_up_due = Some(date(20));
        let bytes = document(&visit, |v, replica| {
            v.findings = ["Deux enfants au séchage.", "Aucun enfant vu."][replica].into();
            v.actions
                .insert([VisitAction::Advice, VisitAction::Referral][replica]);
        });
        assert_read_as_automerge_reads_it(RecordKind::Visit, visit.id, &bytes, true);

        let mut child = ChildCase::new("C-1", "Aya K.", Sex::Female, area, date(2), person);
        child.estimated_age = Some(11);
        child.hours_per_week = 30;
        child.night_work = true;
        child.tasks.insert("harvest".into());
        child.worst_forms.insert(WorstForm::DebtBondage);
        child.classification = Some(Classification {
            outcome: ClassificationOutcome::WorstFormSuspected,
            rule_set: "CI@1".into(),
            age: Some(-1),
            reason: "article 3 (a)".into(),
        });
        child.referrals.insert(
            Uuid::now_v7(),
            Referral::new(ServiceKind::Education, "P-01", date(3)),
        );
        let bytes = document(&child, |c, replica| {
            c.sex = [Sex::Female, Sex::Male][replica];
            c.followups.insert(
                Uuid::now_v7(),
                FollowUp::new(date(5), FollowUpSituation::AtRisk, None),
            );
        });
        assert_read_as_automerge_reads_it(RecordKind::ChildCase, child.id, &bytes, true);
        // A field the classification decides on, in conflict, is weighed value by value
        // (`Record::derive_in_conflict`): read from the document itself.
        let bytes = document(&child, |c, replica| {
            c.date_of_birth = Some(date(10 + replica as u32));
        });
        assert_read_as_automerge_reads_it(RecordKind::ChildCase, child.id, &bytes, false);

        let user = User::new("Awa Koné", Role::CommunityMonitor, &["CI-R1"]);
        let bytes = document(&user, |u, replica| u.active = replica == 0);
        assert_read_as_automerge_reads_it(RecordKind::User, user.id, &bytes, true);

        // Versions by number: map keys a string does not give without JSON's reading of them.
        let reference = ReferenceDocument::new(ReferenceType::CountryProfile, "CI");
        let bytes = document(&reference, |r, replica| {
            let published = serde_json::json!({
                "published_at": "2026-01-01T00:00:00Z",
                "content": format!("{{\"school_calendar\":{{\"term\":{replica}}}}}"),
            });
            r.versions
                .insert(1, serde_json::from_value(published).unwrap());
        });
        assert_read_as_automerge_reads_it(RecordKind::Reference, reference.id, &bytes, false);
    }
}

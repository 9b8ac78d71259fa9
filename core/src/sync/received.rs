//! What a device takes from a peer or a bundle beyond its scope (`peer::check_received`): each
//! change it lacks names, as its author, the device it was made on and that device's user as
//! the hub certified them, and takes only the steps that user's role (and, made in another's
//! name, the sender's) may take; and the record holds no field its kind does not define, and
//! no value its rules refuse. The hub checks the same of whoever pushes. A phone
//! that took a monitor's "verification" from a colleague's altered app showed it as done,
//! passed it on, and its own edits built on it waited for good for an author whose change the
//! hub had refused.

use crate::codec::bounds::DocumentLimits;
use crate::doc;
use crate::domain::codes::{RecordKind, Role};
use crate::domain::records;
use crate::domain::reference::ReferenceData;
use crate::domain::rights;
use crate::error::{Error, Result};
use crate::identity::Certificate;
use crate::store::TypedRecord;
use automerge::{Automerge, ChangeHash, ChangeMetadata};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// The devices whose changes a device can judge: their user and role, as the hub certified
/// them (the directory it last heard, and the certificate of the peer or the bundle's maker).
pub(crate) struct KnownDevices(HashMap<Uuid, (Uuid, Role)>);

impl KnownDevices {
    pub(crate) fn new<'c>(certificates: impl IntoIterator<Item = &'c Certificate>) -> Self {
        Self(
            certificates
                .into_iter()
                .map(|c| (c.device, (c.user, c.role)))
                .collect(),
        )
    }
}

/// The most runs of one device's changes (`Run`) judged in one received record, and the most
/// bytes read to judge them (runs × the record's size).
const MAX_RUNS: usize = 256;
const MAX_RUN_BYTES: usize = 32 * 1024 * 1024;

fn refused(id: Uuid, why: impl std::fmt::Display) -> Error {
    Error::NotAllowed {
        rule: format!("record {id} is not taken from a peer or a bundle: {why}"),
    }
}

/// A run of changes one device made one after another: judged together, from the version the
/// first was made on to the one the last leaves, as the hub judges a push.
struct Run {
    device: Uuid,
    user: Uuid,
    role: Role,
    base: Vec<ChangeHash>,
    last: ChangeHash,
}

/// Refuses `document` (received for record `id`) if a change of it that `held` (this device's
/// copy, if any) lacks does not name the device it was made on as its author, was made on a
/// device this one does not know (the console, a device enrolled since its last sync: it comes
/// with the hub instead), names another user than the hub certified for that device, reuses
/// the number of a change of its device that `held` holds, or takes a step that user's role
/// may not take; or if the record holds a field its kind does not define that `held` did not.
pub(crate) fn check_changes(
    (known, sender): (&KnownDevices, Sender),
    id: Uuid,
    (document, size): (&Automerge, usize),
    held: Option<&Automerge>,
    lacking: &[ChangeMetadata<'_>],
    (reference, today): (&ReferenceData, &records::Today),
) -> Result<()> {
    let Some(kind) = doc::kind_of(document) else {
        return Err(refused(id, "it names no kind"));
    };
    // Each change of this device's copy by its device's number in it: a received change under
    // a number the copy holds another change under is not this record's history (made in that
    // device's name elsewhere), and would fail the whole session's merge.
    let numbered: HashMap<(Vec<u8>, u64), ChangeHash> = held
        .map(|held| {
            held.get_changes_meta(&[])
                .into_iter()
                .map(|c| ((c.actor.to_bytes().to_vec(), c.seq), c.hash))
                .collect()
        })
        .unwrap_or_default();
    let mut runs: Vec<Run> = Vec::new();
    let mut run_of: HashMap<ChangeHash, usize> = HashMap::new();
    // Causal order: a change comes after its dependencies.
    for change in lacking {
        if numbered.contains_key(&(change.actor.to_bytes().to_vec(), change.seq)) {
            return Err(refused(
                id,
                "a change reuses the number of another change of its device that this one holds",
            ));
        }
        let made_on = doc::device_of_actor(&change.actor);
        let Some(author) = doc::author_in(change.message.as_deref())
            .filter(|author| Some(author.device) == made_on)
        else {
            return Err(refused(
                id,
                "a change does not name the device it was made on as its author",
            ));
        };
        let role = match known.0.get(&author.device) {
            Some((user, _)) if *user != author.user => {
                return Err(refused(
                    id,
                    "a change names another user than the one its device is enrolled for",
                ));
            }
            Some(&(_, role)) => role,
            // No device of the directory this one last heard: enrolled since (its changes come
            // with the hub), the hub's own (the console's), or none the hub ever enrolled,
            // whose changes would never reach it and would hold this device's own back.
            None => {
                return Err(refused(
                    id,
                    "a change made on a device this one does not know (the hub brings it)",
                ));
            }
        };
        let follows = match change.deps[..] {
            [dep] => run_of
                .get(&dep)
                .copied()
                .filter(|&r| runs[r].last == dep && runs[r].device == author.device),
            _ => None,
        };
        let index = match follows {
            Some(r) => {
                runs[r].last = change.hash;
                r
            }
            None => {
                runs.push(Run {
                    device: author.device,
                    user: author.user,
                    role,
                    base: change.deps.clone(),
                    last: change.hash,
                });
                runs.len() - 1
            }
        };
        run_of.insert(change.hash, index);
    }
    // Each run costs two reads of the record: a history that alternates between devices many
    // times (a hostile peer's, or a long one this device lacks whole) comes with the hub.
    if runs.len() > MAX_RUNS || runs.len().saturating_mul(size) > MAX_RUN_BYTES {
        return Err(refused(
            id,
            "too long a history by too many devices to check here (the hub brings it)",
        ));
    }
    let hashes: Vec<ChangeHash> = lacking.iter().map(|c| c.hash).collect();
    if let Some(held) = held
        && doc::reaches_unseen_operations(document, &hashes, &held.get_heads())
    {
        return Err(refused(id, doc::UNSEEN_OPERATIONS));
    }
    // As the hub judges it: a peer's altered app would take a colleague's work away here too.
    if doc::replaces_kept_objects(kind, document, &hashes).is_some() {
        return Err(refused(id, doc::REPLACES_KEPT_OBJECT));
    }
    // Judged on this device's copy with the changes merged in: the received document alone
    // lacks this device's own removal or edit that the changes meet.
    if let Some(held) = held
        && !hashes.is_empty()
    {
        let merged = std::panic::catch_unwind(|| {
            let mut merged = held.clone();
            let changes = hashes
                .iter()
                .filter_map(|hash| automerge::ReadDoc::get_change_by_hash(document, hash));
            merged.apply_changes(changes).ok().map(|_| merged)
        });
        let Ok(Some(merged)) = merged else {
            return Err(refused(
                id,
                "its changes do not apply to this device's copy",
            ));
        };
        if let Some((_, rule)) =
            doc::meets_a_concurrent_removal(&merged, &hashes, &held.get_heads())
        {
            return Err(refused(id, rule));
        }
    }
    let makers: HashSet<Uuid> = runs.iter().map(|run| run.device).collect();
    if !doc::devices_within_share(document, &makers, &DocumentLimits::STANDARD) {
        return Err(refused(
            id,
            "a device made more of its changes than one device may make of a record's",
        ));
    }
    let unreadable = |_| refused(id, "a version of it does not read");
    // The record as received, read once: the version most runs end at (a record new to this
    // device, made on one device), and the one whose fields are checked.
    let current = TypedRecord::read(kind, id, document).map_err(unreadable)?;
    let heads = document.get_heads();
    for run in &runs {
        let before = match run.base.is_empty() {
            true => None,
            false => Some(TypedRecord::read_at(kind, id, document, &run.base).map_err(unreadable)?),
        };
        let read;
        let after = match heads[..] == [run.last] {
            true => &current,
            false => {
                read = TypedRecord::read_at(kind, id, document, &[run.last]).map_err(unreadable)?;
                &read
            }
        };
        // A visit is its visitor's account: filed in a colleague's name, it would be a forgery
        // (the hub refuses it from its author; a phone took it, and showed it as theirs).
        if let TypedRecord::Visit(visit) = after {
            let was = match &before {
                Some(TypedRecord::Visit(was)) => Some(was),
                _ => None,
            };
            rights::check_visitor(was, visit, &[run.user])
                .map_err(|e| refused(id, format!("{} (visitor_id)", e.rule)))?;
        }
        // A run that settles values side by side takes a step from each device's values it
        // overrides, and a review kept whole is judged as a review, as the hub judges a push
        // (`settled_values`): a supervisor's settlement travels between phones.
        let (judged, mut steps) = match &before {
            Some(before) => {
                let settled =
                    TypedRecord::settled(document, (&run.base, &[run.last]), before, after);
                (Some(settled.from), settled.steps)
            }
            None => (None, Vec::new()),
        };
        steps.extend(rights::steps(
            judged.as_ref().map(TypedRecord::subject),
            after.subject(),
        ));
        for step in &steps {
            rights::check_step(run.role, run.user, step)
                .map_err(|e| refused(id, format!("{} ({})", e.rule, step.field())))?;
            // Nothing binds a change to the device it names: whoever brings a change made in
            // another's name may have written it, and brings only steps its own role may take
            // (a colleague's altered app merged cases, as a supervisor's change, on a phone).
            // A step of a role above the sender's comes with the hub.
            if run.device != sender.device {
                rights::check_step(sender.role, run.user, step).map_err(|e| {
                    refused(
                        id,
                        format!("{} ({}), brought in another's name", e.rule, step.field()),
                    )
                })?;
            }
        }
        // The files the run took off, added or captioned, as the hub judges a push's.
        if !run.base.is_empty() {
            let was = doc::attachments_at(document, &run.base);
            let now = doc::attachments_at(document, &[run.last]);
            let subjects = (before.as_ref().map(TypedRecord::subject), after.subject());
            rights::check_files(run.role, run.user, subjects, (&was, &now))
                .map_err(|e| refused(id, format!("{} ({})", e.refusal.rule, e.field)))?;
            if run.device != sender.device {
                rights::check_files(sender.role, run.user, subjects, (&was, &now)).map_err(
                    |e| {
                        refused(
                            id,
                            format!(
                                "{} ({}), brought in another's name",
                                e.refusal.rule, e.field
                            ),
                        )
                    },
                )?;
            }
        }
    }
    check_known_fields(id, kind, (document, &current), held)?;
    // The copy held here, read once, and only when a rule needs it.
    let read_once = std::cell::OnceCell::new();
    let held_record = || -> Result<Option<&TypedRecord>> {
        if read_once.get().is_none() {
            let read = held
                .map(|held| TypedRecord::read(kind, id, held))
                .transpose()
                .map_err(|_| refused(id, "this device's copy does not read"))?;
            let _ = read_once.set(read);
        }
        Ok(read_once.get().and_then(Option::as_ref))
    };
    check_status_from_held(
        known,
        sender,
        id,
        (document, &current),
        (held, &held_record),
    )?;
    // The days a clock never set gave, when the changes were made before 2020.
    let today = today.with_changes_made_at(lacking.iter().map(|c| c.timestamp));
    check_values(id, &current, &held_record, (reference, &today))
}

/// This device's copy of a received record, read once when first asked for (`None`: it holds
/// none).
type HeldRecord<'a> = &'a dyn Fn() -> Result<Option<&'a TypedRecord>>;

/// A case's status as received, from the one this device's copy shows: a step its maker's
/// role (the device whose change set the status the merge shows) may take from there, as the
/// hub judges a push (`sync::hub::admit_content`). Each run's own steps were allowed from the
/// version it was made on; a late step made on an older copy must not take the place of a
/// supervisor's closure on this phone (beside it, it is a conflict).
fn check_status_from_held(
    known: &KnownDevices,
    sender: Sender,
    id: Uuid,
    (document, current): (&Automerge, &TypedRecord),
    (held, held_record): (Option<&Automerge>, HeldRecord<'_>),
) -> Result<()> {
    let (TypedRecord::ChildCase(now), Some(held)) = (current, held) else {
        return Ok(());
    };
    // A copy that does not read is `check_values`'s to refuse.
    let Ok(Some(TypedRecord::ChildCase(was))) = held_record() else {
        return Ok(());
    };
    if was.status == now.status {
        return Ok(());
    }
    // As the merge with this device's copy shows it: a sender whose copy is older than this
    // one (a colleague offline, who edited only the guardian) brings no status step.
    let mut merged = held.clone();
    let merged_case = match merged
        .merge(&mut document.clone())
        .ok()
        .and_then(|_| TypedRecord::read(RecordKind::ChildCase, id, &merged).ok())
    {
        Some(TypedRecord::ChildCase(case)) => case,
        _ => {
            return Err(refused(
                id,
                "its merge with this device's copy does not read",
            ));
        }
    };
    // The held status still side by side: a conflict for a supervisor to settle, whichever
    // of the two the merge shows, as the hub keeps it.
    if was.status == merged_case.status || doc::holds_beside(&merged, "status", was.status.as_str())
    {
        return Ok(());
    }
    let (now, document) = (&merged_case, &merged);
    let maker = doc::device_of_field(document, "status");
    let mut roles = vec![sender.role];
    match maker.and_then(|device| known.0.get(&device)) {
        Some(&(_, role)) if maker != Some(sender.device) => roles.push(role),
        Some(_) => {}
        // Set on a device this one does not know: only the hub brings that.
        None => {
            return Err(refused(
                id,
                "its status was set on a device this one does not know (the hub brings it)",
            ));
        }
    }
    for role in roles {
        rights::check_status_reached(role, was.status, now, false)
            .map_err(|e| refused(id, format!("{} (status)", e.rule)))?;
    }
    Ok(())
}

/// The device that brought a record (a peer, a bundle's maker), as the hub certified it.
#[derive(Clone, Copy)]
pub(crate) struct Sender {
    pub(crate) device: Uuid,
    pub(crate) role: Role,
}

/// The record as received breaks none of the rules this device judges its own user's edits by
/// (`store::documents::check_edit`), as the hub will judge them: a colleague's altered app
/// passed on a case identified in 2099, of a child aged -7 working 100,000 hours a week, and
/// a name over several lines, which the phone stored, showed, counted and relayed. What the
/// copy this device holds broke already (a rule newer than the record) is not held against
/// it; nor what only reference versions this phone lacks decide (`records::judged_elsewhere`:
/// judged after every other rule, so that a version pinned to one no phone holds excuses
/// nothing else).
fn check_values(
    id: Uuid,
    record: &TypedRecord,
    held: HeldRecord<'_>,
    (reference, today): (&ReferenceData, &records::Today),
) -> Result<()> {
    let breaks = |e: crate::error::ValidationError| refused(id, format!("{} {}", e.field, e.rule));
    if record.validate(reference).is_err() {
        // What the copy held here broke already, in a field the record leaves as it was.
        if let Err(e) = record.validate_beside(held()?, reference)
            && !records::judged_elsewhere(&e)
        {
            return Err(breaks(e));
        }
    }
    // The versions it is classified by, as the hub takes them: those it was created with, or
    // its country's profile moved forward (a peer moving a case back to an older list would
    // reclassify it here).
    if !super::hub::pins_kept(reference, held()?, record) {
        return Err(refused(
            id,
            "captured_with: not the versions the record was created with, nor a later profile",
        ));
    }
    let dates = record.event_dates();
    if dates.iter().any(|(_, day)| today.implausible(*day)) {
        let known = held()?.map(|h| h.event_dates()).unwrap_or_default();
        records::events_within_their_time(today, &known, &dates).map_err(breaks)?;
    }
    // Text held before stays, and a merge's follow-ups bring theirs, as the hub takes them.
    let texts = record.free_texts();
    if records::texts_within_rules(&[], &texts).is_err() {
        let held = held()?;
        let known = held.map(TypedRecord::free_texts).unwrap_or_default();
        records::set_texts_within_rules(
            held.map(|h| (h.subject(), &known[..])),
            record.subject(),
            texts,
        )
        .map_err(breaks)?;
    }
    if records::plans_within_childhood(None, record.subject(), reference).is_err() {
        records::plans_within_childhood(
            held()?.map(TypedRecord::subject),
            record.subject(),
            reference,
        )
        .map_err(breaks)?;
    }
    Ok(())
}

/// A field the record's kind does not define, at any depth, that this device's copy did not
/// hold already (a document an earlier version wrote keeps what it held).
fn check_known_fields(
    id: Uuid,
    kind: crate::domain::codes::RecordKind,
    (document, record): (&Automerge, &TypedRecord),
    held: Option<&Automerge>,
) -> Result<()> {
    let Some(json) = record.to_json() else {
        return Ok(());
    };
    if !doc::holds_unknown_fields(document, None, &json) {
        return Ok(());
    }
    let held_them = held.is_some_and(|held| {
        TypedRecord::read(kind, id, held)
            .ok()
            .and_then(|was| was.to_json())
            .is_some_and(|was| doc::holds_unknown_fields(held, None, &was))
    });
    match held_them {
        true => Ok(()),
        false => Err(refused(id, "it holds a field its kind does not define")),
    }
}

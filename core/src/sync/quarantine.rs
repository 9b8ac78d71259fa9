//! Changes the hub keeps for review: what a device sent to a record its user may no longer
//! change (`PushOutcome::Quarantined`). A reviewer sees what each entry would change without
//! seeing any value (field names, the area before and after, who made the changes), then
//! accepts it, which checks it as a push is checked, or rejects it.

use super::hub::{
    HubLimits, Principal, Rules, admit, changes_file_the_record, held_once, read_record,
    roles_held, save_admitted, update_record,
};
use crate::codec;
use crate::doc::{self, ChangeAuthor};
use crate::domain::Attachment;
use crate::domain::area::Area;
use crate::domain::codes::{RecordKind, Role};
use crate::domain::records::MERGE_CHAIN;
use crate::domain::records::{ChildCase, Record, User, Version, Visit, Workplace};
use crate::domain::reference::ReferenceData;
use crate::error::{Error, Result};
use crate::storage::{HubTransaction, Quarantined, StoredRecord};
use crate::store::TypedRecord;
use automerge::{ActorId, Automerge, ChangeHash, ReadDoc};
use std::collections::BTreeSet;
use uuid::Uuid;

/// What a quarantined entry would do to its record, told without its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineView {
    pub entry: i64,
    pub record: Uuid,
    /// The device that sent the changes, and its user.
    pub device: Uuid,
    pub user: Uuid,
    pub received_ms: i64,
    pub bytes: usize,
    pub state: ReviewState,
    /// The record's kind, when it is still on the hub.
    pub kind: Option<RecordKind>,
    /// The record's fields whose value the changes would change (top-level names).
    pub fields: Vec<String>,
    /// Where the record is filed now, and where it would be after the changes.
    pub area_before: Option<Area>,
    pub area_after: Option<Area>,
    /// Who the changes say made them (each change names its user and device).
    pub authors: Vec<ChangeAuthor>,
    /// The attachments the changes add to the record's manifest, and those they remove (id,
    /// kind, media type and size: never a caption). Their bytes wait on the hub with the entry.
    pub attachments_added: Vec<QuarantinedAttachment>,
    pub attachments_removed: Vec<QuarantinedAttachment>,
    /// The workflow status the record would have (a visit's `draft`, `submitted`…; a case's
    /// `identified`…): a draft visit accepted from a user who no longer covers its area stays
    /// a draft that only its visitor may finish.
    pub status_after: Option<&'static str>,
    /// A child case's code as the changes leave it (the code its monitor wrote on her phone,
    /// which she and her supervisor know it by; never a name).
    pub case_code: Option<String>,
    /// Whether the record would be filed under a community no area tree in force holds (merged
    /// into another, or renamed, since its author recorded it): accepted, it is filed there,
    /// seen by no one who works in the community it is in now, until it is refiled.
    pub community_gone: bool,
    /// For a community gone, the community its records were filed under again (`vigie
    /// reference refile --to`), where accepting files the record too.
    pub refiled_to: Option<String>,
    /// Where accepting the changes files the record, when not where they say
    /// (`refiled_area`): whose supervisors review them.
    pub filed_at: Option<Area>,
}

impl QuarantineView {
    /// The places a supervisor reviews the entry for, one of them in their areas: where the
    /// record is filed, and where accepting files it.
    pub fn reviewed_at(&self) -> [Option<&Area>; 2] {
        [
            self.area_before.as_ref(),
            self.filed_at.as_ref().or(self.area_after.as_ref()),
        ]
    }
}

/// An attachment an entry adds or removes, as a reviewer sees it (never its caption).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedAttachment {
    pub id: Uuid,
    pub kind: crate::domain::AttachmentKind,
    pub media_type: String,
    pub size: u64,
}

impl QuarantinedAttachment {
    fn of(a: &crate::domain::Attachment) -> Self {
        QuarantinedAttachment {
            id: a.id,
            kind: a.kind,
            media_type: a.media_type.clone(),
            size: a.size,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewState {
    /// The changes apply to the record as the hub holds it.
    Applies,
    /// The record was erased since: there is nothing to accept.
    RecordGone,
    /// The changes do not apply to the record as the hub holds it.
    DoesNotApply,
    /// The changes apply, but the record they make breaks a rule a push must pass (a day to
    /// come, a value out of bounds): accepting it is refused; the entry can be rejected.
    BreaksARule,
    /// The record holds the changes already: an ordinary sync of their device took them since
    /// (its user's areas given back). Accepting settles the entry; rejecting cannot undo them.
    AlreadyIn,
}

impl ReviewState {
    /// The state as the command line and the console name it.
    pub fn code(self) -> &'static str {
        match self {
            ReviewState::Applies => "applies",
            ReviewState::RecordGone => "record_gone",
            ReviewState::DoesNotApply => "does_not_apply",
            ReviewState::BreaksARule => "breaks_a_rule",
            ReviewState::AlreadyIn => "already_in",
        }
    }
}

/// Who accepts quarantined changes, and so whose rules they must pass.
#[derive(Debug, Clone)]
pub enum Reviewer {
    /// A supervisor: the record, before and after the changes, must be in their areas.
    Supervisor(Principal),
    /// The hub's administrator, naming no supervisor: the changes may change the record's
    /// values but not the community it is filed under.
    Hub,
}

/// The record with the entry's changes merged, if they apply.
struct Merge {
    /// The record as the hub holds it; none for a new record (kept from a user who holds no
    /// area any more, `hub::quarantine_new`).
    stored: Option<StoredRecord>,
    document: Automerge,
    before: Vec<ChangeHash>,
}

fn merge(tx: &mut dyn HubTransaction, entry: &Quarantined) -> Result<Option<Merge>> {
    // Erased content does not come back through a review, under any id.
    if super::hub::carries_erased(tx, entry.record, &entry.changes)? {
        return Ok(None);
    }
    let Some(stored) = tx.record(entry.record, true)? else {
        if tx.is_erased(entry.record)? {
            return Ok(None);
        }
        // A new record: the entry is all of it (an entry of changes to a record the hub no
        // longer holds lacks their history, and does not apply).
        let mut document = Automerge::new();
        codec::merge_into(&mut document, entry.record, &entry.changes)?;
        if !document.get_missing_deps(&[]).is_empty() {
            return Err(Error::DamagedDocument {
                id: entry.record,
                reason: "the quarantined changes depend on changes the hub lacks".into(),
            });
        }
        return Ok(Some(Merge {
            stored: None,
            document,
            before: Vec::new(),
        }));
    };
    let mut document = codec::load(entry.record, &stored.document)?;
    let before = document.get_heads();
    match codec::merge_into(&mut document, entry.record, &entry.changes) {
        Ok(()) => {}
        Err(Error::ActorReused { actor, seq, .. }) => {
            // The device numbered later edits of the record like these (it had dropped the
            // record with them when its user lost the area, and received it again since):
            // the changes are made again, as they were, under a new actor of the device.
            document = codec::load(entry.record, &stored.document)?;
            reauthor(&mut document, stored.kind, entry, &actor, seq)?;
        }
        Err(e) => return Err(e),
    }
    if !document.get_missing_deps(&[]).is_empty() {
        return Err(Error::DamagedDocument {
            id: entry.record,
            reason: "the quarantined changes depend on changes the hub lacks".into(),
        });
    }
    Ok(Some(Merge {
        stored: Some(stored),
        document,
        before,
    }))
}

/// Rejects an entry a supervisor reviewed (already taken from the quarantine): its changes
/// the hub does not hold are kept as given up. Their author's device let the record go when
/// they were kept; a colleague's phone that got them by a peer or a bundle is told they will
/// never come (`Refusal::AuthorRevoked`), rather than wait for them and pass the record on.
/// An entry of a revoked device's work a colleague carried (`from_revoked`) gives nothing up.
pub fn reject_quarantined(
    tx: &mut dyn HubTransaction,
    entry: &Quarantined,
    from_revoked: bool,
) -> Result<()> {
    let stored = tx.record(entry.record, true)?;
    let held = || -> Result<Automerge> {
        match &stored {
            Some(stored) => codec::load(entry.record, &stored.document),
            None => Ok(Automerge::new()),
        }
    };
    let mut document = held()?;
    let mut before = document.get_heads();
    match codec::merge_into(&mut document, entry.record, &entry.changes) {
        Ok(()) => {}
        // Numbered like later edits of the device the hub holds (another entry of it accepted
        // first, `reauthor`): judged on the record without those, where they were made, so
        // that what is given up is these changes as sent.
        Err(Error::ActorReused { actor, seq, .. }) => {
            let held = held()?;
            let kept = doc::heads_without(&held, &actor, seq);
            let Ok(mut made) = held.fork_at(&kept) else {
                return Ok(());
            };
            if codec::merge_into(&mut made, entry.record, &entry.changes).is_err() {
                return Ok(());
            }
            (document, before) = (made, kept);
        }
        Err(_) => {
            // Changes that no longer apply otherwise: as sent.
            document = Automerge::new();
            before = Vec::new();
            if codec::merge_into(&mut document, entry.record, &entry.changes).is_err() {
                return Ok(());
            }
        }
    }
    let new = document.get_changes_meta(&before);
    if new.is_empty() && !before.is_empty() {
        // A reviewer told "rejected" would believe the record is without them.
        return Err(Error::NotAllowed {
            rule: "the record holds these changes already (an ordinary sync of their device \
                   took them since): rejecting cannot undo them; accept the entry to settle it, \
                   and edit the record"
                .into(),
        });
    }
    // A revoked device's work a colleague carried (`hub::keep_carried_for_review`): its
    // device will never send it, and each colleague's copy comes once, judged in an entry of
    // its own. Given up, the lost phone's honest work in it (a case it made, before a thief
    // wrote on it) would be refused in every copy to come, clean ones included, and with it
    // the colleagues' edits built on it.
    if from_revoked {
        // That copy of it is not kept again, from any carrier.
        let hashes: Vec<ChangeHash> = new.iter().map(|c| c.hash).collect();
        if !hashes.is_empty() {
            tx.set_setting(&crate::storage::rejected_carried_key(&hashes), "1")?;
        }
        return Ok(());
    }
    // Only what the entry's device made: a colleague's edits a lost phone's work was carried
    // with are that colleague's, who sends them as its own.
    // Nor what another entry waiting for the record holds, decided on its own (the same work
    // carried without a thief's edits by another colleague).
    let elsewhere = held_by_other_entries(tx, entry.record)?;
    let rejected: Vec<ChangeHash> = new
        .iter()
        .filter(|c| doc::device_of_actor(&c.actor) == Some(entry.device))
        .map(|c| c.hash)
        .filter(|hash| !elsewhere.contains(hash))
        .collect();
    tx.give_up_changes(&rejected)
}

/// The changes the entries waiting for `record` hold that the hub does not.
fn held_by_other_entries(
    tx: &mut dyn HubTransaction,
    record: Uuid,
) -> Result<std::collections::HashSet<ChangeHash>> {
    let stored = tx.record(record, false)?;
    Ok(super::hub::waiting_changes(tx, record, stored.as_ref())?
        .into_iter()
        .flatten()
        .collect())
}

/// Writes onto `document` what an entry's changes did to the record, as one change of a new
/// actor of the entry's device made where the entry's changes were made (their dependencies):
/// the fields they set take their values, concurrent with every later edit (a field edited on
/// both sides is a conflict, kept and shown), and nothing else of the record moves.
fn reauthor(
    document: &mut Automerge,
    kind: RecordKind,
    entry: &Quarantined,
    actor: &ActorId,
    seq: u64,
) -> Result<()> {
    let id = entry.record;
    let cannot = |reason: &str| Error::DamagedDocument {
        id,
        reason: reason.into(),
    };
    // The record without the device's later edits numbered like these, then with these.
    let kept = doc::heads_without(document, actor, seq);
    let mut made = document
        .fork_at(&kept)
        .map_err(|_| cannot("the record's history could not be forked"))?;
    codec::merge_into(&mut made, id, &entry.changes)?;
    if !made.get_missing_deps(&[]).is_empty() {
        return Err(cannot(
            "the quarantined changes depend on changes the hub lacks",
        ));
    }
    write_as_one_change(document, &made, &kept, kind, entry)
}

/// Writes onto `document` what `made` holds past `from` (an entry's changes merged on the
/// record), as one change of a new actor of the entry's device, naming the entry's user and
/// device, made where those changes were made (their dependencies outside them).
fn write_as_one_change(
    document: &mut Automerge,
    made: &Automerge,
    from: &[ChangeHash],
    kind: RecordKind,
    entry: &Quarantined,
) -> Result<()> {
    let id = entry.record;
    let cannot = |reason: &str| Error::DamagedDocument {
        id,
        reason: reason.into(),
    };
    let changes = made.get_changes_meta(from);
    let hashes: BTreeSet<ChangeHash> = changes.iter().map(|c| c.hash).collect();
    let mut base = BTreeSet::new();
    let mut tips = hashes.clone();
    for change in &changes {
        for dep in change.deps.iter() {
            tips.remove(dep);
            if !hashes.contains(dep) {
                base.insert(*dep);
            }
        }
    }
    let (base, tips): (Vec<_>, Vec<_>) = (base.into_iter().collect(), tips.into_iter().collect());
    let author = ChangeAuthor {
        user: entry.user,
        device: entry.device,
    };
    document.set_actor(doc::actor_for(
        entry.device,
        crate::store::receive::new_nonce(),
    ));
    match kind {
        RecordKind::Workplace => rewrite_at::<Workplace>(made, document, id, &tips, &base, &author),
        RecordKind::Visit => rewrite_at::<Visit>(made, document, id, &tips, &base, &author),
        RecordKind::ChildCase => rewrite_at::<ChildCase>(made, document, id, &tips, &base, &author),
        // Devices never write users or reference data.
        RecordKind::User | RecordKind::Reference => Err(cannot("the record is not a device's")),
    }
}

/// Writes onto `document` the record `made` holds at `tips`, as an edit made at `base`.
fn rewrite_at<R: Record>(
    made: &Automerge,
    document: &mut Automerge,
    id: Uuid,
    tips: &[ChangeHash],
    base: &[ChangeHash],
    author: &ChangeAuthor,
) -> Result<()> {
    let mut record = doc::read_record_at::<R>(made, id, tips)?;
    record.set_version(Version(base.to_vec()));
    // Written on the record as it stood at `base`, then merged: the change numbers its
    // operations from where its own history ends, as `codec::merge_into` holds every received
    // change to (a change made at `base` on the whole document would number them after the
    // later edits, and the devices receiving it would refuse it).
    let cannot = |reason: &str| Error::DamagedDocument {
        id,
        reason: reason.into(),
    };
    let mut at_base = document
        .fork_at(base)
        .map_err(|_| cannot("the record's history could not be forked"))?;
    at_base.set_actor(document.get_actor().clone());
    doc::write_record(&mut at_base, &record, author)?;
    // And the attachments the entry added or removed (a photo taken with the edit), which
    // the record's fields do not hold: their bytes came with the entry.
    let (before, after) = (
        doc::attachments_at(made, base),
        doc::attachments_at(made, tips),
    );
    for gone in before.iter().filter(|b| after.iter().all(|a| a.id != b.id)) {
        doc::remove_attachment(&mut at_base, gone.id, author)?;
    }
    for added in after.iter().filter(|a| !before.contains(a)) {
        doc::put_attachment(&mut at_base, added, author)?;
    }
    let changes = at_base.get_changes(base);
    document
        .apply_changes(changes)
        .map_err(|_| cannot("the rewritten change does not apply"))?;
    Ok(())
}

/// An entry's changes merged on the record (`merged`, past `before`), as their author would
/// have sent them. A revoked device's work a colleague's phone carried
/// (`hub::keep_carried_for_review`) may hold edits of the colleague's it built on (the phone had
/// them from that colleague before it was lost), which that colleague's phone made again and
/// sent as its own: what the changes did is written as one change of the revoked device's user
/// where they were made (returned). The changes as carried are not given up: another
/// colleague's copy of the lost phone's later work builds on them, and is kept and accepted in
/// turn (the fields it sets again take the same values). Any other entry is its device's own,
/// taken as it is (`None`).
fn as_its_author(
    stored: Option<&StoredRecord>,
    merged: &Automerge,
    before: &[ChangeHash],
    kind: RecordKind,
    entry: &Quarantined,
) -> Result<Option<Automerge>> {
    if merged
        .get_changes_meta(before)
        .iter()
        .all(|c| doc::device_of_actor(&c.actor) == Some(entry.device))
    {
        return Ok(None);
    }
    let mut document = match stored {
        Some(stored) => codec::load(entry.record, &stored.document)?,
        None => Automerge::new(),
    };
    write_as_one_change(&mut document, merged, before, kind, entry)?;
    Ok(Some(document))
}

/// The role of the user who made an entry's changes, as the hub holds them now (a user moved
/// or deactivated keeps their role; one demoted since takes the steps of their new role): the
/// workflow steps the changes take are that user's, whoever accepts them.
fn author_role(tx: &mut dyn HubTransaction, entry: &Quarantined) -> Result<Option<Role>> {
    Ok(read_record::<User>(tx, entry.user)?.map(|user| user.role))
}

/// The manifest entry of attachment `id` in the changes of `record` that `who`'s device sent and
/// that wait for review, with the whole manifest they give the record: what the device uploads
/// of a record that left it for review, so that the photo is there if a supervisor accepts it.
pub(crate) fn attachment_under_review(
    tx: &mut dyn HubTransaction,
    who: &Principal,
    record: Uuid,
    id: Uuid,
) -> Result<Option<(Attachment, Vec<Attachment>)>> {
    for entry in tx.quarantined_for(record)? {
        if entry.device != who.device || entry.user != who.user {
            continue;
        }
        let document = match merge(tx, &entry) {
            Ok(Some(merged)) => merged.document,
            Ok(None) => continue,
            Err(e @ (Error::Storage(_) | Error::HubStorage { .. })) => return Err(e),
            Err(_) => continue,
        };
        let entries = doc::attachments(&document);
        if let Some(found) = entries.iter().find(|a| a.id == id) {
            return Ok(Some((found.clone(), entries)));
        }
    }
    Ok(None)
}

/// An entry's changes as a review judges them: the record after them, and where it is filed.
struct Judged<'a> {
    kind: RecordKind,
    stored_kind: Option<RecordKind>,
    area: Option<&'a Area>,
    document: &'a Automerge,
    before: &'a [ChangeHash],
}

impl Judged<'_> {
    /// The role whose steps the changes are judged by: their author's now (`rules`), unless
    /// its rules refuse them and a role the author held where the record is filed
    /// (`roles_held`) takes them: work done offline before an administrator changed the role
    /// (an inspector's visit, now a monitor; a supervisor's verification, now an inspector),
    /// which the reviewer who accepts it vouches for. With whether that role admits them.
    fn role(
        &self,
        tx: &mut dyn HubTransaction,
        rules: &Rules<'_>,
        entry: &Quarantined,
    ) -> Result<(Role, bool)> {
        // None when admitted; else why not.
        let refused = |tx: &mut dyn HubTransaction, rules: &Rules<'_>| -> Result<Option<_>> {
            let admitted = admit(
                tx,
                rules,
                entry.record,
                self.stored_kind,
                self.document,
                self.before,
            )?;
            Ok(admitted.err())
        };
        let Some(now) = refused(tx, rules)? else {
            return Ok((rules.author_role, true));
        };
        // Refused under every role: judged as the role held then refuses it, if for another
        // reason, so that the review says what really stands in the way (a follow-up recorded
        // since a verification made under a former role), not that the role now may not.
        let mut telling = None;
        let mut held = roles_held(tx, rules.reference, entry.user, self.kind, self.area)?;
        // The role that takes the most steps first: the one the work was likely done under
        // (a supervisor's verification, the user a monitor before and an inspector after).
        held.sort_by_key(|(role, _)| match role {
            Role::Supervisor => 0,
            Role::Inspector => 1,
            Role::CommunityMonitor => 2,
            Role::Administrator => 3,
        });
        for (role, _) in held {
            if role == rules.author_role {
                continue;
            }
            match refused(
                tx,
                &Rules {
                    author_role: role,
                    ..*rules
                },
            )? {
                None => return Ok((role, true)),
                Some(then) if then != now => telling = telling.or(Some(role)),
                Some(_) => {}
            }
        }
        Ok((telling.unwrap_or(rules.author_role), false))
    }
}

/// Describes an entry for its reviewer.
pub fn describe_quarantined(
    tx: &mut dyn HubTransaction,
    entry: &Quarantined,
) -> Result<QuarantineView> {
    let mut view = QuarantineView {
        entry: entry.entry,
        record: entry.record,
        device: entry.device,
        user: entry.user,
        received_ms: entry.received_ms,
        bytes: entry.changes.len(),
        state: ReviewState::Applies,
        kind: None,
        fields: Vec::new(),
        area_before: None,
        area_after: None,
        authors: Vec::new(),
        attachments_added: Vec::new(),
        attachments_removed: Vec::new(),
        status_after: None,
        case_code: None,
        community_gone: false,
        refiled_to: None,
        filed_at: None,
    };
    let merged = match merge(tx, entry) {
        Ok(Some(merged)) => merged,
        Ok(None) => {
            view.state = ReviewState::RecordGone;
            return Ok(view);
        }
        Err(Error::Storage(e)) => return Err(Error::Storage(e)),
        Err(Error::HubStorage { reason, retryable }) => {
            return Err(Error::HubStorage { reason, retryable });
        }
        Err(_) => {
            view.state = ReviewState::DoesNotApply;
            return Ok(view);
        }
    };
    let Merge {
        stored,
        document,
        before,
    } = merged;
    if stored.is_some() && document.get_heads() == before {
        view.state = ReviewState::AlreadyIn;
        return Ok(view);
    }
    let Some(kind) = stored
        .as_ref()
        .map(|s| s.kind)
        .or_else(|| doc::kind_of(&document))
    else {
        view.state = ReviewState::DoesNotApply;
        return Ok(view);
    };
    view.kind = Some(kind);
    let stored_kind = stored.is_some();
    view.area_before = stored.as_ref().and_then(|s| s.area.clone());
    let after = TypedRecord::read(kind, entry.record, &document).ok();
    view.area_after = after.as_ref().and_then(|r| r.area().cloned());
    view.case_code = match &after {
        Some(TypedRecord::ChildCase(c)) => Some(c.case_code.clone()),
        _ => None,
    };
    view.status_after = after.as_ref().and_then(|r| match r {
        TypedRecord::Visit(v) => Some(v.status.as_str()),
        TypedRecord::ChildCase(c) => Some(c.status.as_str()),
        _ => None,
    });
    let (old, new) = (
        doc::to_json(&document, Some(&before)),
        doc::to_json(&document, None),
    );
    let empty = serde_json::Map::new();
    let old = old.as_object().unwrap_or(&empty);
    let new = new.as_object().unwrap_or(&empty);
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    // A field the changes set concurrently with a later edit may keep the later value as the
    // one shown: the values it holds (a conflict now) say it changed.
    let values = |name: &str, at: Option<&[ChangeHash]>| {
        let all = match at {
            Some(heads) => document.get_all_at(automerge::ROOT, name, heads),
            None => document.get_all(automerge::ROOT, name),
        };
        all.map(|values| values.into_iter().map(|(_, id)| id).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    view.fields = names
        .into_iter()
        .filter(|name| {
            !name.starts_with('$')
                && (old.get(*name) != new.get(*name)
                    || values(name, Some(&before)) != values(name, None))
        })
        .map(|name| name.to_string())
        .collect();
    let (was, now) = (
        doc::attachments_at(&document, &before),
        doc::attachments(&document),
    );
    view.attachments_added = now
        .iter()
        .filter(|a| !was.iter().any(|w| w.id == a.id))
        .map(QuarantinedAttachment::of)
        .collect();
    view.attachments_removed = was
        .iter()
        .filter(|w| !now.iter().any(|a| a.id == w.id))
        .map(QuarantinedAttachment::of)
        .collect();
    // Judged as accepting it without naming a supervisor would judge it (`Reviewer::Hub`).
    let reference = tx.reference()?;
    view.community_gone = view
        .area_after
        .as_ref()
        .is_some_and(|a| community_gone(&a.community, &reference));
    if let Some(area) = view.area_after.as_ref().filter(|_| view.community_gone) {
        view.refiled_to = tx.refiled_to(&area.community)?;
    }
    if let Some(area) = &view.area_after {
        view.filed_at = refiled_area(tx, &reference, area)?;
    }
    let who = Principal {
        device: entry.device,
        user: entry.user,
        role: Role::Supervisor,
        areas: view
            .area_before
            .iter()
            .chain(&view.area_after)
            .map(|a| reviewing_code(a, &reference))
            .collect(),
    };
    let scope = who.scope(&reference);
    let Some(author_role) = author_role(tx, entry)? else {
        view.state = ReviewState::BreaksARule;
        return Ok(view);
    };
    let rules = Rules {
        reference: &reference,
        scope: &scope,
        who: &who,
        author: ChangeAuthor {
            user: entry.user,
            device: entry.device,
        },
        author_role,
        limits: &review_limits(),
        today: crate::domain::records::Today::by_clock(),
        pushed: false,
    };
    let stored_kind = stored_kind.then_some(kind);
    let Ok(rewritten) = as_its_author(stored.as_ref(), &document, &before, kind, entry) else {
        view.state = ReviewState::DoesNotApply;
        return Ok(view);
    };
    let judged = rewritten.as_ref().unwrap_or(&document);
    let judged_by = Judged {
        kind,
        stored_kind,
        area: view.area_after.as_ref(),
        document: judged,
        before: &before,
    };
    let (_, admitted) = judged_by.role(tx, &rules, entry)?;
    if !admitted
        || (changes_file_the_record(&document, &before, kind, entry.record)
            && !held_once(tx, &reference, entry.user, kind, view.area_after.as_ref())?)
    {
        view.state = ReviewState::BreaksARule;
    }
    for change in document.get_changes_meta(&before) {
        let author = change
            .message
            .as_deref()
            .and_then(|m| serde_json::from_str::<ChangeAuthor>(m).ok());
        if let Some(author) = author
            && !view.authors.contains(&author)
        {
            view.authors.push(author);
        }
    }
    Ok(view)
}

/// The code a review judged as the hub's own (`Reviewer::Hub`) is made with, for a record
/// filed in `area`: its community's, or, for a community a new tree renamed (its code
/// resolves to nothing now), its district's.
fn reviewing_code(area: &Area, reference: &ReferenceData) -> String {
    match community_gone(&area.community, reference) {
        false => area.community.clone(),
        true => area.district.clone(),
    }
}

/// The limits a review judges changes by: the hub's own, but none on attachments' sizes and
/// numbers. Those the hub that takes the bytes judges (`vigie serve`'s, which a review on the
/// command line does not know): judged by the defaults, an 11 MB consent on a hub that takes
/// 20 MB files could only be rejected, the child's case with it. A file over the limits in
/// force never has its bytes taken (`attachments::upload`).
fn review_limits() -> HubLimits {
    let mut limits = HubLimits::default();
    limits.attachments.max_file_bytes = u64::MAX;
    limits.attachments.max_record_bytes = u64::MAX;
    limits.attachments.max_per_record = u32::MAX;
    limits
}

/// Where the area tree in force files a record filed under `area`, when elsewhere: the
/// community's place in the tree (moved to another district since), or where a community no
/// tree holds any more had its records filed again (`vigie reference refile --to`). `None`:
/// it stays where it is.
pub fn refiled_area(
    tx: &mut dyn HubTransaction,
    reference: &ReferenceData,
    area: &Area,
) -> Result<Option<Area>> {
    let Some(tree) = reference.area_tree(&area.country) else {
        return Ok(None);
    };
    if !community_gone(&area.community, reference) {
        return Ok(tree.area_of(&area.community).filter(|to| to != area));
    }
    // Renamed, then renamed again: each refile says where the records of one code went.
    let mut code = area.community.clone();
    for _ in 0..MAX_RENAMES {
        match tx.refiled_to(&code)? {
            Some(next) if !community_gone(&next, reference) => return Ok(tree.area_of(&next)),
            Some(next) if next != code => code = next,
            _ => return Ok(None),
        }
    }
    Ok(None)
}

/// The most renames `refiled_area` follows (a loop of refiles ends there).
const MAX_RENAMES: usize = 32;

/// Whether a community code resolves to nothing in the area trees in force (a new tree
/// merged or renamed it).
pub fn community_gone(community: &str, reference: &ReferenceData) -> bool {
    reference.grants_of(community).is_empty()
}

/// Accepts quarantined changes after a review: they are merged into the record as the device
/// made them, if the record after the merge passes the rules a push passes (`admit`), with the
/// reviewer's scope and the record validated against `reference`; what they add to a case
/// merged since into another goes to the case kept too, written by `actor` as the reviewer's
/// change. Returns whether the record changed.
pub fn accept_quarantined(
    tx: &mut dyn HubTransaction,
    actor: &ActorId,
    entry: &Quarantined,
    reviewer: &Reviewer,
    reference: &ReferenceData,
) -> Result<bool> {
    let Some(Merge {
        stored,
        document,
        before,
    }) = merge(tx, entry)?
    else {
        return Ok(false);
    };
    // Where the record is filed now: as stored, or, for a new record, where it says.
    let (kind, filed) = match &stored {
        Some(stored) => (stored.kind, stored.area.clone()),
        None => {
            let kind = doc::kind_of(&document).ok_or_else(|| Error::DamagedDocument {
                id: entry.record,
                reason: "the quarantined record names no kind".into(),
            })?;
            let record = TypedRecord::read(kind, entry.record, &document)?;
            (kind, record.area().cloned())
        }
    };
    // Accepted, it is filed where the tree in force puts the community the changes file it
    // under (moved, or renamed, since they were made): reviewed by that place's supervisors,
    // not the old place's (as `describe_quarantined`'s `filed_at`).
    let filed_after = TypedRecord::read(kind, entry.record, &document)
        .ok()
        .and_then(|record| record.area().cloned())
        .or_else(|| filed.clone());
    let destination = match &filed_after {
        Some(area) => refiled_area(tx, reference, area)?,
        None => None,
    };
    let reviewed_at = destination.as_ref().or(filed.as_ref());
    let mut who = match reviewer {
        Reviewer::Supervisor(who) => {
            if who.role != Role::Supervisor {
                return Err(Error::NotAllowed {
                    rule: "only a supervisor reviews quarantined changes".into(),
                });
            }
            who.clone()
        }
        Reviewer::Hub => Principal {
            device: entry.device,
            user: entry.user,
            role: Role::Supervisor,
            areas: reviewed_at
                .iter()
                .map(|a| reviewing_code(a, reference))
                .collect(),
        },
    };
    if !who.scope(reference).receives(kind, reviewed_at) {
        return Err(Error::NotAllowed {
            rule: "the record is outside the reviewer's areas".into(),
        });
    }
    // The rules judge the record where its author filed it, which the reviewer of its new
    // place covers for this review (it is filed there right after).
    if let (Some(_), Some(from)) = (&destination, &filed_after) {
        who.areas.insert(reviewing_code(from, reference));
    }
    let scope = who.scope(reference);
    if document.get_heads() == before {
        return Ok(false);
    }
    let mut document = match as_its_author(stored.as_ref(), &document, &before, kind, entry)? {
        Some(rewritten) => rewritten,
        None => document,
    };
    // Where the changes file the record must be where their author worked (a user who lost
    // an area, or never had it, cannot put a child's case there through a review); changes
    // that leave the record where it is (filed since by a supervisor, or under an area code
    // a new tree renamed) are judged by the rules alone. (Written again as its author's, the
    // changes set the same values: `filed_after` holds.)
    if changes_file_the_record(&document, &before, kind, entry.record)
        && !held_once(tx, reference, entry.user, kind, filed_after.as_ref())?
    {
        return Err(Error::NotAllowed {
            rule: "the changes file the record where the user who made them never worked".into(),
        });
    }
    let author = ChangeAuthor {
        user: entry.user,
        device: entry.device,
    };
    let author_role = author_role(tx, entry)?.ok_or_else(|| Error::NotAllowed {
        rule: "the user who made the changes is not known to this hub".into(),
    })?;
    let rules = Rules {
        reference,
        scope: &scope,
        who: &who,
        author,
        author_role,
        limits: &review_limits(),
        today: crate::domain::records::Today::by_clock(),
        pushed: false,
    };
    let judged_by = Judged {
        kind,
        stored_kind: stored.as_ref().map(|s| s.kind),
        area: filed_after.as_ref(),
        document: &document,
        before: &before,
    };
    let (author_role, _) = judged_by.role(tx, &rules, entry)?;
    let rules = Rules {
        author_role,
        ..rules
    };
    const REFUSED: &str = "the reviewed changes break a rule";
    // A new record has no history before the entry's changes (`before` is empty).
    save_admitted(
        tx,
        &rules,
        stored.as_ref(),
        entry.record,
        &mut document,
        &before,
        REFUSED,
    )?;
    if kind == RecordKind::ChildCase {
        let reviewer = ChangeAuthor {
            user: who.user,
            device: who.device,
        };
        bring_over_accepted(
            tx,
            actor,
            reviewer,
            reference,
            &document,
            &before,
            entry.record,
        )?;
    }
    Ok(true)
}

/// Changes accepted on a case merged since into another: what they recorded of the child goes
/// to the case kept, as the device brings over what it recorded on a duplicate when the merge
/// reaches it (`store::documents::carry_over`). Its device never will: it lost the area or its
/// user left, which is why the changes waited for review. Written by the reviewer.
fn bring_over_accepted(
    tx: &mut dyn HubTransaction,
    actor: &ActorId,
    reviewer: ChangeAuthor,
    reference: &ReferenceData,
    document: &Automerge,
    before: &[ChangeHash],
    id: Uuid,
) -> Result<()> {
    let held: ChildCase = doc::read_record(document, id)?;
    let Some(mut target) = held.kept_as() else {
        return Ok(());
    };
    // Only what the accepted changes add: the rest the merge took, or the case kept was given.
    let taken: Option<ChildCase> = match before.is_empty() {
        true => None,
        false => Some(doc::read_record_at(document, id, before)?),
    };
    for _ in 0..MERGE_CHAIN {
        let Some(mut kept) = read_record::<ChildCase>(tx, target)? else {
            return Ok(());
        };
        if let Some(next) = kept.kept_as() {
            target = next;
            continue;
        }
        if kept.bring_over(&held, taken.as_ref(), reference) {
            update_record(tx, actor, reviewer, reference, &kept)?;
        }
        return Ok(());
    }
    Ok(())
}

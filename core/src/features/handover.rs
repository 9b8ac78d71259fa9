//! Handing open cases from one user to another on the same phone.
//!
//! The giver's store makes the change of assignee as an ordinary edit, so it sits in the
//! giver's outbox and reaches the hub with their next sync; the receiver's store merges the
//! same documents at once, so the receiver can work on the cases offline before any sync.
//! Nothing is deleted on either side.
//!
//! The assignee is `identified_by`: it is what the due lists are kept per monitor by (the
//! child case has no separate assignee), and the document's history still tells who
//! identified the child.
//!
//! A case goes only to a user who receives it (`rights::check_assignee`, the rule the hub applies
//! to a change of assignee too): the giver's store refuses a receiver whose certificate in the
//! directory does not cover a case, and a receiver its directory does not list (a user enrolled
//! since its last sync, or of another area: the hub would refuse the change, and the case would
//! wait, the giver's later edits with it, until the change was discarded); the receiver's store
//! refuses a case its user's role and areas (as the hub last told them, else as its certificate
//! says) do not cover, before anything is written. A store that never synced (two users of a
//! phone that never did) cannot judge, and the hub judges at the push.

use crate::codec;
use crate::doc;
use crate::domain::codes::{CaseStatus, RecordKind};
use crate::domain::records::ChildCase;
use crate::domain::rights::{Scope, check_assignee};
use crate::error::{Error, Result, ValidationError};
use crate::identity::Certificate;
use crate::store::{Store, find_row};
use std::collections::BTreeSet;
use uuid::Uuid;

/// Cases handed from one user to another, with their documents as the giver's store holds them
/// after the hand-over.
#[derive(Clone, PartialEq, Eq)]
pub struct HandOver {
    pub from: Uuid,
    pub to: Uuid,
    pub cases: Vec<HandedCase>,
}

#[derive(Clone, PartialEq, Eq)]
pub struct HandedCase {
    pub id: Uuid,
    /// The case's whole Automerge document: it holds the child's personal data.
    pub document: Vec<u8>,
}

impl std::fmt::Debug for HandOver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandOver")
            .field("from", &self.from)
            .field("to", &self.to)
            .field(
                "cases",
                &self.cases.iter().map(|c| c.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl std::fmt::Debug for HandedCase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandedCase")
            .field("id", &self.id)
            .field("document_bytes", &self.document.len())
            .finish()
    }
}

impl Store {
    /// Assigns the cases to user `to` (one transaction: all or none) and returns them for
    /// `to`'s store (`receive_hand_over`). Only open cases may be handed over: a closed one is
    /// `Error::CaseNotOpen`, a duplicate merged into another case `Error::NotAllowed`.
    pub fn hand_over(&mut self, cases: &[Uuid], to: Uuid) -> Result<HandOver> {
        if to.is_nil() {
            return Err(ValidationError::new("to", "must be set").into());
        }
        if to == self.user_id() {
            return Err(Error::NotAllowed {
                rule: "a case is handed over to another user".into(),
            });
        }
        let mut seen = BTreeSet::new();
        let ids: Vec<Uuid> = cases
            .iter()
            .copied()
            .filter(|id| seen.insert(*id))
            .collect();
        let receiver = self.assignee_scope(&self.directory()?, to)?;
        let mut changed = Vec::with_capacity(ids.len());
        for &id in &ids {
            let mut case: ChildCase = self.get(id)?;
            if case.status == CaseStatus::Closed {
                return Err(Error::CaseNotOpen {
                    id,
                    status: case.status,
                });
            }
            if case.is_merged_duplicate() {
                return Err(Error::NotAllowed {
                    rule: "the case was merged into another case: hand over that case".into(),
                });
            }
            if let Some(receiver) = &receiver {
                check_assignee(receiver, &case)?;
            }
            if case.identified_by != to {
                case.identified_by = to;
                changed.push(case);
            }
        }
        self.update_together(&changed)?;
        let cases = ids
            .into_iter()
            .map(|id| {
                Ok(HandedCase {
                    id,
                    document: self.export_document(id)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(HandOver {
            from: self.user_id(),
            to,
            cases,
        })
    }

    /// Merges cases handed to this store's user (one transaction: all or none). They are
    /// queued for the hub like anything received from another device. Returns their ids.
    pub fn receive_hand_over(&mut self, hand_over: &HandOver) -> Result<Vec<Uuid>> {
        if hand_over.to != self.user_id() {
            return Err(Error::NotAllowed {
                rule: "the hand-over is for another user".into(),
            });
        }
        // Every case must be this user's to receive, before anything is written (the error
        // names the record, nothing of its content).
        if let Some(own) = self.own_scope()? {
            for case in &hand_over.cases {
                let document = codec::load(case.id, &case.document)?;
                let kind = doc::kind_of(&document);
                if kind != Some(RecordKind::ChildCase) {
                    return Err(Error::WrongKind {
                        id: case.id,
                        expected: RecordKind::ChildCase,
                        actual: kind.unwrap_or(RecordKind::ChildCase),
                    });
                }
                let handed: ChildCase = doc::read_record(&document, case.id)?;
                // A refusal of the step, not of the phone's credentials: the app tells its user
                // the case is not theirs to take (the giver takes it back, `hand_over` to
                // herself, or hands it to someone whose areas cover it).
                if check_assignee(&own, &handed).is_err() {
                    return Err(Error::NotAllowed {
                        rule: format!(
                            "the handed case {} lies outside this user's areas or role",
                            case.id
                        ),
                    });
                }
            }
        }
        self.receive(|merging| {
            for case in &hand_over.cases {
                merging.merge(case.id, &case.document)?;
                let (_, kind, _) = find_row(merging.tx, case.id)?.ok_or(Error::NotFound {
                    kind: Some(RecordKind::ChildCase),
                    id: case.id,
                })?;
                if kind != RecordKind::ChildCase {
                    return Err(Error::WrongKind {
                        id: case.id,
                        expected: RecordKind::ChildCase,
                        actual: kind,
                    });
                }
            }
            Ok(())
        })?;
        Ok(hand_over.cases.iter().map(|c| c.id).collect())
    }

    /// This store's user's scope: their role and areas as the hub last told them, else as
    /// their certificate says; `None` on a store that knows neither.
    fn own_scope(&self) -> Result<Option<Scope>> {
        let reference = self.reference();
        if let Some(profile) = self.user_profile()? {
            return Ok(Some(profile.scope(&reference)));
        }
        Ok(self.certificate()?.map(|c| c.principal().scope(&reference)))
    }

    /// The scope of `user`, to whom a case is given (a hand-over, a case registered for them,
    /// an edit of its assignee), as the directory the hub delivered at the last sync says. A
    /// user it does not list is refused once the store synced (even if the directory came
    /// empty: the first phone of a hub): one whose phone had not synced then, or of another
    /// area, whom the hub would refuse, the case then waiting on the phone with every later
    /// edit. `None` on a store the hub never certified (it never synced): it cannot judge, and
    /// the hub does.
    pub(crate) fn assignee_scope(
        &self,
        directory: &[Certificate],
        user: Uuid,
    ) -> Result<Option<Scope>> {
        match self.scope_in(directory, user) {
            Some(scope) => Ok(Some(scope)),
            None if directory.is_empty() && self.certificate()?.is_none() => Ok(None),
            None => Err(Error::NotAllowed {
                rule: "a case goes only to a user this phone's directory lists: a user whose phone had not synced with the hub at this phone's last sync is not in it yet (sync, then try again)".into(),
            }),
        }
    }

    /// The scope of user `user` as a directory the hub delivered says (their most recently
    /// issued certificate); `None` if no certificate of theirs is in it.
    pub(crate) fn scope_in(&self, directory: &[Certificate], user: Uuid) -> Option<Scope> {
        directory
            .iter()
            .filter(|c| c.user == user)
            .max_by_key(|c| c.issued_ms)
            .map(|c| c.principal().scope(&self.reference()))
    }
}

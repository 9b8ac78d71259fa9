//! Two devices syncing directly (a monitor and a supervisor's tablet), with no hub and no cursor
//! between them.
//!
//! Each side describes every record it shares as an item: the hash of the record's id and heads.
//! Range-based set reconciliation (negentropy) finds the items one side has and the other lacks
//! with bytes proportional to the differences, then each side sends the documents the other
//! lacks. Merging a whole document is idempotent, so a repeated or crossed message is harmless.

use super::wire::{self, PeerMessage};
use crate::error::{Error, Result};
use crate::model::AreaFilter;
use crate::store::{self, Store};
use negentropy::{Id, Negentropy, NegentropyStorageVector};
use rusqlite::types::Value as Sql;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use uuid::Uuid;

/// Which records two peers share. Records of a user (no area) are never shared peer to peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerScope {
    /// Records in any of these areas; empty means every record with an area.
    pub areas: Vec<AreaFilter>,
}

/// One side of a peer-to-peer session.
pub struct PeerSession {
    negentropy: Negentropy<'static, NegentropyStorageVector>,
    items: HashMap<[u8; 32], Uuid>,
    initiator: bool,
    finished: bool,
    max_message_bytes: usize,
    /// Records received and merged.
    pub received: usize,
    /// Records sent.
    pub sent: usize,
}

impl std::fmt::Debug for PeerSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerSession")
            .field("initiator", &self.initiator)
            .field("finished", &self.finished)
            .field("received", &self.received)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

fn item_id(id: Uuid, heads: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(id.as_bytes());
    // Heads are stored sorted by Automerge, so equal heads hash equally on both sides.
    hash.update(heads);
    hash.finalize().into()
}

fn protocol(reason: &str) -> Error {
    Error::Transport {
        reason: format!("peer sync: {reason}"),
    }
}

/// Runs the reconciler on a frame from the other side, which is untrusted.
fn contain<T>(step: impl FnOnce() -> std::result::Result<T, negentropy::Error>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(step))
        .map_err(|_| protocol("a reconciliation frame made the reconciler fail"))?
        .map_err(|_| protocol("damaged reconciliation frame"))
}

impl PeerSession {
    /// Whether the session has nothing more to send or receive.
    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

impl Store {
    fn peer_items(
        &self,
        scope: &PeerScope,
    ) -> Result<(NegentropyStorageVector, HashMap<[u8; 32], Uuid>)> {
        let mut params = Vec::new();
        let clauses: Vec<String> = scope
            .areas
            .iter()
            .map(|a| {
                let (column, code) = a.column_and_code();
                params.push(Sql::Text(code.to_string()));
                format!("s.{column} = ?{}", params.len())
            })
            .collect();
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" OR "))
        };
        let mut stmt = self.conn.prepare(&format!(
            "SELECT r.id, r.heads FROM records r JOIN scope_index s ON s.record = r.rowid {filter}"
        ))?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        let mut storage = NegentropyStorageVector::new();
        let mut items = HashMap::new();
        while let Some(row) = rows.next()? {
            let Ok(id) = Uuid::from_slice(&row.get::<_, Vec<u8>>(0)?) else {
                continue;
            };
            let item = item_id(id, &row.get::<_, Vec<u8>>(1)?);
            // The v7 id's time spreads items over ranges; a tie is broken by the hash.
            let (secs, _) = id.get_timestamp().map_or((0, 0), |t| t.to_unix());
            storage
                .insert(secs, Id::from_byte_array(item))
                .map_err(|_| protocol("item rejected by the reconciler"))?;
            items.insert(item, id);
        }
        storage
            .seal()
            .map_err(|_| protocol("items could not be sealed"))?;
        Ok((storage, items))
    }

    fn peer_session(
        &self,
        scope: &PeerScope,
        initiator: bool,
        max_message_bytes: usize,
    ) -> Result<PeerSession> {
        let (storage, items) = self.peer_items(scope)?;
        // negentropy takes 0 (no limit) or at least 4096.
        let frame_limit = (max_message_bytes as u64 / 2).max(4096);
        let negentropy = Negentropy::owned(storage, frame_limit)
            .map_err(|_| protocol("reconciler refused its settings"))?;
        Ok(PeerSession {
            negentropy,
            items,
            initiator,
            finished: false,
            max_message_bytes,
            received: 0,
            sent: 0,
        })
    }

    /// Starts a session as the initiator: returns it and the first message for the other side.
    pub fn peer_start(
        &self,
        scope: &PeerScope,
        max_message_bytes: usize,
    ) -> Result<(PeerSession, Vec<u8>)> {
        let mut session = self.peer_session(scope, true, max_message_bytes)?;
        let frame = session
            .negentropy
            .initiate()
            .map_err(|_| protocol("could not start reconciliation"))?;
        let message = PeerMessage {
            reconcile: Some(frame),
            documents: Vec::new(),
            wanted: Vec::new(),
            done: false,
        };
        Ok((session, wire::encode(wire::PEER_TAG, &message)))
    }

    /// Starts a session as the side that answers.
    pub fn peer_accept(&self, scope: &PeerScope, max_message_bytes: usize) -> Result<PeerSession> {
        self.peer_session(scope, false, max_message_bytes)
    }

    /// Handles a message from the other side; returns the reply to send, or `None` when the
    /// session is complete. Received documents are merged in one transaction.
    ///
    /// The initiator drives: it sends reconciliation frames and, once it knows, the documents
    /// the answerer lacks and the items it wants. The answerer replies to each message with its
    /// next frame and the documents asked for; its reply to the initiator's last message ends
    /// the session.
    pub fn peer_step(
        &mut self,
        session: &mut PeerSession,
        message: &[u8],
    ) -> Result<Option<Vec<u8>>> {
        let limit = session.max_message_bytes.saturating_mul(8).max(1 << 20);
        let message: PeerMessage = wire::decode(wire::PEER_TAG, "peer message", message, limit)?;
        self.peer_merge(session, &message.documents)?;
        let mut documents = self.peer_documents(session, &message.wanted)?;
        let reply = if session.initiator {
            let Some(frame) = message.reconcile else {
                // The answerer's last documents.
                session.finished = true;
                return Ok(None);
            };
            let (mut have, mut need) = (Vec::new(), Vec::new());
            let next = contain(|| {
                session
                    .negentropy
                    .reconcile_with_ids(&frame, &mut have, &mut need)
            })?;
            let have: Vec<[u8; 32]> = have.iter().map(|id| *id.as_bytes()).collect();
            documents.extend(self.peer_documents(session, &have)?);
            let wanted: Vec<[u8; 32]> = need.iter().map(|id| *id.as_bytes()).collect();
            if next.is_none() && documents.is_empty() && wanted.is_empty() {
                // Nothing differs: no need for a last exchange.
                session.finished = true;
                return Ok(None);
            }
            PeerMessage {
                done: next.is_none(),
                reconcile: next,
                documents,
                wanted,
            }
        } else {
            let reconcile = match message.reconcile {
                Some(frame) => Some(contain(|| session.negentropy.reconcile(&frame))?),
                None => None,
            };
            session.finished = message.done;
            PeerMessage {
                reconcile,
                documents,
                wanted: Vec::new(),
                done: message.done,
            }
        };
        Ok(Some(wire::encode(wire::PEER_TAG, &reply)))
    }

    fn peer_documents(
        &self,
        session: &mut PeerSession,
        wanted: &[[u8; 32]],
    ) -> Result<Vec<(Uuid, Vec<u8>)>> {
        let mut documents = Vec::new();
        let mut size = 0;
        for item in wanted {
            let Some(id) = session.items.get(item) else {
                continue;
            };
            if let Some((_, _, bytes)) = store::find_row(&self.conn, *id)? {
                size += bytes.len();
                documents.push((*id, bytes));
                session.sent += 1;
            }
            if size > session.max_message_bytes.saturating_mul(4) {
                // A peer session is for a handful of devices' differences; a larger gap is a
                // job for the hub or a bundle.
                break;
            }
        }
        Ok(documents)
    }

    fn peer_merge(
        &mut self,
        session: &mut PeerSession,
        documents: &[(Uuid, Vec<u8>)],
    ) -> Result<()> {
        if documents.is_empty() {
            return Ok(());
        }
        let mut receiver = self.receiver();
        let tx = self.conn.transaction()?;
        for (id, bytes) in documents {
            store::receive::merge_received(
                &tx,
                &mut receiver,
                store::reference_source!(self),
                *id,
                bytes,
            )?;
            session.received += 1;
        }
        tx.commit()?;
        self.received(receiver);
        Ok(())
    }
}

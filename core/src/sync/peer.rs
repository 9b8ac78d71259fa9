//! Two devices syncing directly (a monitor and a supervisor's tablet), with no hub and no cursor
//! between them.
//!
//! Nothing is exchanged before both have proved who they are: the initiator sends its
//! certificate and a fresh nonce; the answerer checks it (the pinned hub's signature, expiry,
//! revocation) and answers with its own certificate, its nonce and a signature over the
//! transcript; the initiator checks those and signs the transcript too, with its first
//! reconciliation frame. Each side then offers only the records the other's certificate covers,
//! by the hub's own rule (`Scope::receives`, the hub's SQL), and refuses any received record
//! outside the sender's scope or its own.
//!
//! Each side describes every record it shares as an item: the hash of the record's id and heads.
//! Range-based set reconciliation (negentropy) finds the items one side has and the other lacks
//! with bytes proportional to the differences, then each side sends the documents the other
//! lacks. Merging a whole document is idempotent, so a repeated or crossed message is harmless.

use super::wire::{self, PeerMessage};
use crate::codec;
use crate::doc;
use crate::domain::area::AreaFilter;
use crate::domain::codes::RecordKind;
use crate::domain::rights::Scope;
use crate::error::{Error, Result};
use crate::identity::{Certificate, IdentityError, verify_device};
use crate::store::{self, Store, TypedRecord};
use negentropy::{Id, Negentropy, NegentropyStorageVector};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use uuid::Uuid;

const HANDSHAKE_TAG: [u8; 4] = *b"VGh1";
const HANDSHAKE_VERSION: u8 = 1;
const TRANSCRIPT_LABEL: &[u8] = b"vigie peer handshake v1\0";
/// A handshake message is a certificate, a nonce, a signature and one frame: small.
const MAX_HANDSHAKE_BYTES: usize = 1 << 20;

/// The handshake's messages (`HANDSHAKE_TAG`, postcard, compressed like every message).
#[derive(Debug, Serialize, Deserialize)]
enum Handshake {
    /// Initiator → answerer.
    Hello {
        version: u8,
        #[serde(with = "serde_bytes")]
        certificate: Vec<u8>,
        nonce: [u8; 32],
    },
    /// Answerer → initiator: signed over the transcript, labelled "answerer".
    Reply {
        #[serde(with = "serde_bytes")]
        certificate: Vec<u8>,
        nonce: [u8; 32],
        #[serde(with = "serde_bytes")]
        signature: Vec<u8>,
    },
    /// Initiator → answerer: signed over the transcript, labelled "initiator", with the first
    /// reconciliation message.
    Proof {
        #[serde(with = "serde_bytes")]
        signature: Vec<u8>,
        #[serde(with = "serde_bytes")]
        first: Vec<u8>,
    },
}

/// Where a session stands.
enum Stage {
    /// The initiator sent its hello.
    AwaitReply {
        certificate: Vec<u8>,
        nonce: [u8; 32],
    },
    /// The answerer waits for a hello.
    AwaitHello,
    /// The answerer replied and waits for the initiator's proof.
    AwaitProof {
        transcript: [u8; 32],
        peer: Box<Certificate>,
    },
    /// Both are authenticated: reconciliation.
    Running,
}

fn handshake_error(step: &'static str) -> Error {
    Error::Identity(IdentityError::Handshake { step })
}

/// The hash both sides sign: both certificates and both nonces, in order.
fn transcript(
    initiator: &[u8],
    nonce_i: &[u8; 32],
    answerer: &[u8],
    nonce_a: &[u8; 32],
) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(TRANSCRIPT_LABEL);
    for (certificate, nonce) in [(initiator, nonce_i), (answerer, nonce_a)] {
        hash.update((certificate.len() as u32).to_le_bytes());
        hash.update(certificate);
        hash.update(nonce);
    }
    hash.finalize().into()
}

fn signed_part(role: &[u8], transcript: &[u8; 32]) -> Vec<u8> {
    [role, transcript].concat()
}

fn signature_of(bytes: &[u8]) -> Result<[u8; 64]> {
    bytes
        .try_into()
        .map_err(|_| handshake_error("malformed signature"))
}

fn fresh_nonce() -> [u8; 32] {
    let mut nonce = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    nonce
}

/// Whether a received document lies in every one of `scopes` (the sender's and the
/// receiver's): its kind and area, read from the document itself. Reference data comes only
/// from the hub.
pub(super) fn check_within(scopes: &[&Scope], id: Uuid, bytes: &[u8]) -> Result<()> {
    let outside = || Error::Identity(IdentityError::OutOfScope { record: id });
    let document = codec::load(id, bytes)?;
    let kind = doc::kind_of(&document).ok_or_else(outside)?;
    if kind == RecordKind::Reference {
        return Err(outside());
    }
    let record = TypedRecord::read(kind, id, &document)?;
    if scopes
        .iter()
        .all(|scope| scope.receives(kind, record.area()))
    {
        Ok(())
    } else {
        Err(outside())
    }
}

/// Which records two peers share. Records of a user (no area) are never shared peer to peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerScope {
    /// Records in any of these areas; empty means every record with an area.
    pub areas: Vec<AreaFilter>,
}

/// One side of a peer-to-peer session.
pub struct PeerSession {
    stage: Stage,
    /// The records offered are also limited to these areas (the user's choice).
    filter: PeerScope,
    negentropy: Option<Negentropy<'static, NegentropyStorageVector>>,
    items: HashMap<[u8; 32], Uuid>,
    /// The other device's certificate, once checked, and the scopes received records must lie
    /// in (the sender's, and this device's own).
    peer: Option<Certificate>,
    scopes: Vec<Scope>,
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

    /// The other device's certificate, once the handshake checked it.
    pub fn peer(&self) -> Option<&Certificate> {
        self.peer.as_ref()
    }

    fn negentropy(&mut self) -> Result<&mut Negentropy<'static, NegentropyStorageVector>> {
        self.negentropy
            .as_mut()
            .ok_or_else(|| handshake_error("reconciliation before authentication"))
    }
}

impl Store {
    fn peer_items(
        &self,
        filter: &PeerScope,
        receiver: &Scope,
    ) -> Result<(NegentropyStorageVector, HashMap<[u8; 32], Uuid>)> {
        let mut storage = NegentropyStorageVector::new();
        let mut items = HashMap::new();
        let allowed = self.ids_for(receiver)?;
        for (id, heads) in store::queries::heads_in(&self.conn, &filter.areas)? {
            if !allowed.contains(&id) {
                continue;
            }
            let item = item_id(id, &heads);
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
        filter: &PeerScope,
        initiator: bool,
        max_message_bytes: usize,
    ) -> PeerSession {
        PeerSession {
            stage: Stage::AwaitHello,
            filter: filter.clone(),
            negentropy: None,
            items: HashMap::new(),
            peer: None,
            scopes: Vec::new(),
            initiator,
            finished: false,
            max_message_bytes,
            received: 0,
            sent: 0,
        }
    }

    /// This device's certificate as the hub issued it. Its validity is the other side's to
    /// judge, by its own clock and revocation list.
    fn own_certificate(&self) -> Result<(Certificate, Vec<u8>)> {
        let certificate = self.certificate()?.ok_or(IdentityError::NoCertificate)?;
        let bytes = certificate.to_bytes();
        Ok((certificate, bytes))
    }

    /// Checks the other side's certificate and sets up reconciliation over the records it may
    /// receive.
    fn authenticated(
        &self,
        session: &mut PeerSession,
        peer: Certificate,
        own: &Certificate,
    ) -> Result<()> {
        if peer.device == own.device {
            return Err(handshake_error(
                "the peer presented this device's own certificate",
            ));
        }
        let reference = self.reference();
        let theirs = peer.principal().scope(&reference);
        let ours = own.principal().scope(&reference);
        let (storage, items) = self.peer_items(&session.filter, &theirs)?;
        // negentropy takes 0 (no limit) or at least 4096.
        let frame_limit = (session.max_message_bytes as u64 / 2).max(4096);
        session.negentropy = Some(
            Negentropy::owned(storage, frame_limit)
                .map_err(|_| protocol("reconciler refused its settings"))?,
        );
        session.items = items;
        session.scopes = vec![theirs, ours];
        session.peer = Some(peer);
        session.stage = Stage::Running;
        Ok(())
    }

    /// Starts a session as the initiator: returns it and the first message for the other side
    /// (its hello: certificate and nonce). `scope` narrows what is offered to some areas.
    pub fn peer_start(
        &self,
        scope: &PeerScope,
        max_message_bytes: usize,
    ) -> Result<(PeerSession, Vec<u8>)> {
        let mut session = self.peer_session(scope, true, max_message_bytes);
        let (_, certificate) = self.own_certificate()?;
        let nonce = fresh_nonce();
        let hello = Handshake::Hello {
            version: HANDSHAKE_VERSION,
            certificate: certificate.clone(),
            nonce,
        };
        session.stage = Stage::AwaitReply { certificate, nonce };
        Ok((session, wire::encode(HANDSHAKE_TAG, &hello)))
    }

    /// Starts a session as the side that answers. `scope` narrows what is offered.
    pub fn peer_accept(&self, scope: &PeerScope, max_message_bytes: usize) -> Result<PeerSession> {
        self.own_certificate()?;
        Ok(self.peer_session(scope, false, max_message_bytes))
    }

    /// The handshake's steps; returns the reply to send.
    fn peer_handshake(
        &mut self,
        session: &mut PeerSession,
        message: &[u8],
    ) -> Result<Option<Vec<u8>>> {
        let handshake: Handshake = wire::decode(
            HANDSHAKE_TAG,
            "peer handshake",
            message,
            MAX_HANDSHAKE_BYTES,
        )?;
        let keys = self.device_keys()?;
        match (
            std::mem::replace(&mut session.stage, Stage::AwaitHello),
            handshake,
        ) {
            (
                Stage::AwaitHello,
                Handshake::Hello {
                    version,
                    certificate: theirs,
                    nonce: their_nonce,
                },
            ) => {
                if version != HANDSHAKE_VERSION {
                    return Err(IdentityError::UnsupportedVersion {
                        what: "peer handshake",
                    }
                    .into());
                }
                let peer = self.trust()?.check(&theirs)?;
                let (own, ours) = self.own_certificate()?;
                if peer.device == own.device {
                    return Err(handshake_error(
                        "the peer presented this device's own certificate",
                    ));
                }
                let nonce = fresh_nonce();
                let transcript = transcript(&theirs, &their_nonce, &ours, &nonce);
                let reply = Handshake::Reply {
                    certificate: ours,
                    nonce,
                    signature: keys.sign(&signed_part(b"answerer", &transcript)).to_vec(),
                };
                session.stage = Stage::AwaitProof {
                    transcript,
                    peer: Box::new(peer),
                };
                Ok(Some(wire::encode(HANDSHAKE_TAG, &reply)))
            }
            (
                Stage::AwaitReply {
                    certificate: ours,
                    nonce: our_nonce,
                },
                Handshake::Reply {
                    certificate: theirs,
                    nonce: their_nonce,
                    signature,
                },
            ) => {
                let peer = self.trust()?.check(&theirs)?;
                let transcript = transcript(&ours, &our_nonce, &theirs, &their_nonce);
                verify_device(
                    &peer.keys,
                    &signed_part(b"answerer", &transcript),
                    &signature_of(&signature)?,
                    "peer handshake",
                )?;
                let own = Certificate::from_bytes(&ours)?;
                self.authenticated(session, peer, &own)?;
                let frame = session
                    .negentropy()?
                    .initiate()
                    .map_err(|_| protocol("could not start reconciliation"))?;
                let first = wire::encode(
                    wire::PEER_TAG,
                    &PeerMessage {
                        reconcile: Some(frame),
                        documents: Vec::new(),
                        wanted: Vec::new(),
                        done: false,
                    },
                );
                let proof = Handshake::Proof {
                    signature: keys.sign(&signed_part(b"initiator", &transcript)).to_vec(),
                    first,
                };
                Ok(Some(wire::encode(HANDSHAKE_TAG, &proof)))
            }
            (Stage::AwaitProof { transcript, peer }, Handshake::Proof { signature, first }) => {
                verify_device(
                    &peer.keys,
                    &signed_part(b"initiator", &transcript),
                    &signature_of(&signature)?,
                    "peer handshake",
                )?;
                let (own, _) = self.own_certificate()?;
                self.authenticated(session, *peer, &own)?;
                self.peer_step(session, &first)
            }
            _ => Err(handshake_error("unexpected message")),
        }
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
        if message.starts_with(&HANDSHAKE_TAG) {
            return self.peer_handshake(session, message);
        }
        if !matches!(session.stage, Stage::Running) {
            return Err(handshake_error("reconciliation before authentication"));
        }
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
                    .as_mut()
                    .expect("a running session reconciles")
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
                Some(frame) => {
                    let negentropy = session.negentropy()?;
                    Some(contain(|| negentropy.reconcile(&frame))?)
                }
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
        let scopes: Vec<&Scope> = session.scopes.iter().collect();
        for (id, bytes) in documents {
            check_within(&scopes, *id, bytes)?;
        }
        self.receive(|merging| {
            for (id, bytes) in documents {
                merging.merge(*id, bytes)?;
                session.received += 1;
            }
            Ok(())
        })?;
        Ok(())
    }
}

/// Runs a whole session between two stores of one process (tools, tests; an app carries the
/// messages over Bluetooth or Wi-Fi and calls `peer_step` on each side): returns the round
/// trips, or the first error either side meets.
pub fn sync_peers(
    initiator: &mut Store,
    answerer: &mut Store,
    scope: &PeerScope,
    max_message_bytes: usize,
) -> Result<usize> {
    let (mut session, mut message) = initiator.peer_start(scope, max_message_bytes)?;
    let mut answer = answerer.peer_accept(scope, max_message_bytes)?;
    let mut trips = 0;
    loop {
        trips += 1;
        let Some(reply) = answerer.peer_step(&mut answer, &message)? else {
            return Ok(trips);
        };
        match initiator.peer_step(&mut session, &reply)? {
            Some(next) => message = next,
            None => return Ok(trips),
        }
    }
}

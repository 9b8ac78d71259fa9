//! Two devices syncing directly (a monitor and a supervisor's tablet), with no hub and no cursor
//! between them.
//!
//! Nothing is exchanged before both have proved who they are, and nothing on the link says who
//! they are: the initiator's hello is a fresh nonce and a fresh X25519 key; the answerer replies
//! with its own, and from the two keys' shared secret both derive the handshake's keys, under
//! which each side's certificate and signature travel sealed (`identity::channel`). The answerer
//! signs what was exchanged and its certificate; the initiator checks that certificate (the
//! pinned hub's signature, expiry, revocation) and signature, then signs the whole transcript,
//! both certificates included, and sends that sealed with its first reconciliation frame; the
//! answerer checks them in turn. The session's keys come from the shared secret and the whole
//! transcript, and every message after the handshake (the first frame too) is sealed under them,
//! so that nothing on the link reads a record, a device, a user or an area, and a message of
//! another session, or altered, is refused. A listener learns nothing of either side; the
//! initiator shows who it is only to an answerer it has checked, and the answerer's certificate
//! goes to whoever runs the handshake with it (as the hub's directory gives it to every enrolled
//! device). Each side then offers only the records the other's certificate covers, by the hub's
//! own rule (`Scope::receives`, the hub's SQL), and refuses any received record outside the
//! sender's scope or its own, and any record holding a change in its own name that it lacks.
//!
//! Each side describes every record it shares as an item: the hash of the record's id and heads.
//! Range-based set reconciliation (negentropy) finds the items one side has and the other lacks
//! with bytes proportional to the differences, then each side sends the documents the other
//! lacks. Merging a whole document is idempotent, and a message delivered twice (a handshake
//! message, or a sealed message whose number was opened) is recognised and changes nothing.

use super::received::{self, KnownDevices};
use super::wire::{self, PeerMessage};
use crate::codec;
use crate::doc;
use crate::domain::area::AreaFilter;
use crate::domain::codes::RecordKind;
use crate::domain::limits::DocumentLimits;
use crate::domain::rights::Scope;
use crate::error::{DecodeError, Error, Result};
use crate::identity::channel::{Channel, Ephemeral, Keys, Opened};
use crate::identity::{Certificate, IdentityError, verify_device};
use crate::store::{self, Store, TypedRecord, erasure};
use automerge::Automerge;
use negentropy::{Id, Negentropy, NegentropyStorageVector};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::collections::HashMap;
use uuid::Uuid;
use zeroize::Zeroizing;

const HANDSHAKE_TAG: [u8; 4] = *b"VGh1";
/// 3: the certificates travel sealed, under keys of the handshake (2 sent them in clear: a
/// listener learnt both devices, their users and areas; 1 had no ephemeral keys). A hello of
/// another version is refused as `UnsupportedVersion` on either side: versions 1 and 2 read the
/// version first, as this one does.
const HANDSHAKE_VERSION: u8 = 3;
const TRANSCRIPT_LABEL: &[u8] = b"vigie peer handshake v3\0";
/// The tag of an `Identity`, inside its seal.
const IDENTITY_TAG: [u8; 4] = *b"VGi1";
/// A handshake message is a nonce, a key, a certificate, a signature and one frame: small.
const MAX_HANDSHAKE_BYTES: usize = 1 << 20;

/// The handshake's messages (`HANDSHAKE_TAG`, postcard, compressed like every message).
#[derive(Debug, Serialize, Deserialize)]
enum Handshake {
    /// Initiator → answerer. `version` comes first in every version.
    Hello {
        version: u8,
        nonce: [u8; 32],
        /// The initiator's ephemeral X25519 key.
        ephemeral: [u8; 32],
    },
    /// Answerer → initiator: its nonce and ephemeral key, and its `Identity` sealed under the
    /// handshake's keys, signed over what the hello and the reply exchanged and its
    /// certificate, labelled "answerer".
    Reply {
        nonce: [u8; 32],
        /// The answerer's ephemeral X25519 key.
        ephemeral: [u8; 32],
        #[serde(with = "serde_bytes")]
        identity: Vec<u8>,
    },
    /// Initiator → answerer: its `Identity` sealed under the handshake's keys, signed over the
    /// whole transcript, labelled "initiator"; and the first reconciliation message, sealed
    /// under the session's.
    Proof {
        #[serde(with = "serde_bytes")]
        identity: Vec<u8>,
        #[serde(with = "serde_bytes")]
        first: Vec<u8>,
    },
}

/// Who one side is: its certificate and its signature over the transcript.
#[derive(Serialize, Deserialize)]
struct Identity {
    #[serde(with = "serde_bytes")]
    certificate: Vec<u8>,
    #[serde(with = "serde_bytes")]
    signature: Vec<u8>,
}

/// Seals who this side is as its message under the handshake's keys (`keys`).
fn seal_identity(keys: &mut Channel, certificate: Vec<u8>, signature: [u8; 64]) -> Vec<u8> {
    let identity = Identity {
        certificate,
        signature: signature.to_vec(),
    };
    keys.seal(&wire::encode(IDENTITY_TAG, &identity))
}

/// Opens who the other side is, sealed under the handshake's keys.
fn open_identity(keys: &mut Channel, sealed: &[u8]) -> Result<Identity> {
    let Ok(Opened::Next(plain)) = keys.open(sealed) else {
        return Err(handshake_error(
            "the other side's identity does not open (altered, or of another session)",
        ));
    };
    Ok(wire::decode(
        IDENTITY_TAG,
        "peer identity",
        &plain,
        MAX_HANDSHAKE_BYTES,
    )?)
}

/// What every version's hello starts with (postcard ignores the rest).
#[derive(Deserialize)]
enum HelloOfAnyVersion {
    Hello { version: u8 },
}

fn unsupported_version() -> Error {
    IdentityError::UnsupportedVersion {
        what: "peer handshake",
    }
    .into()
}

/// Decodes a handshake message; a hello of another version is `UnsupportedVersion`.
fn decode_handshake(message: &[u8]) -> Result<Handshake> {
    fn decode<T: serde::de::DeserializeOwned>(message: &[u8]) -> Result<T, DecodeError> {
        wire::decode(
            HANDSHAKE_TAG,
            "peer handshake",
            message,
            MAX_HANDSHAKE_BYTES,
        )
    }
    match decode(message) {
        Ok(Handshake::Hello { version, .. }) if version != HANDSHAKE_VERSION => {
            Err(unsupported_version())
        }
        Ok(handshake) => Ok(handshake),
        Err(e) => match decode(message) {
            Ok(HelloOfAnyVersion::Hello { version }) if version != HANDSHAKE_VERSION => {
                Err(unsupported_version())
            }
            _ => Err(e.into()),
        },
    }
}

/// Where a session stands.
enum Stage {
    /// The initiator sent its hello.
    AwaitReply {
        nonce: [u8; 32],
        ephemeral: Ephemeral,
    },
    /// The answerer waits for a hello.
    AwaitHello,
    /// The answerer replied and waits for the initiator's proof.
    AwaitProof {
        ephemeral: Ephemeral,
        /// The initiator's ephemeral key.
        theirs: [u8; 32],
        /// What the hello and the reply exchanged (the handshake's keys come from it).
        exchanged: [u8; 32],
        /// That and the answerer's certificate: what the answerer signed.
        answered: [u8; 32],
    },
    /// Both are authenticated: reconciliation, sealed.
    Running,
}

fn handshake_error(step: &'static str) -> Error {
    Error::Identity(IdentityError::Handshake { step })
}

/// One side's part of the hello and the reply: its nonce and ephemeral key.
type Part<'a> = (&'a [u8; 32], &'a [u8; 32]);

/// The hash of what the hello and the reply exchanged: both nonces and ephemeral keys, in
/// order. The handshake's keys come from it.
fn exchanged(initiator: Part<'_>, answerer: Part<'_>) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(TRANSCRIPT_LABEL);
    for (nonce, ephemeral) in [initiator, answerer] {
        hash.update(nonce);
        hash.update(ephemeral);
    }
    hash.finalize().into()
}

/// The transcript `so_far` followed by a certificate: the answerer's, then the initiator's.
fn with_certificate(so_far: &[u8; 32], certificate: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update(so_far)
        .chain_update((certificate.len() as u32).to_le_bytes())
        .chain_update(certificate)
        .finalize()
        .into()
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
fn check_within(scopes: &[&Scope], id: Uuid, document: &Automerge) -> Result<()> {
    let outside = || Error::Identity(IdentityError::OutOfScope { record: id });
    let kind = doc::kind_of(document).ok_or_else(outside)?;
    if kind == RecordKind::Reference {
        return Err(outside());
    }
    let record = TypedRecord::read(kind, id, document)?;
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

/// A record's id and its whole document, as a peer or a bundle brings it.
pub(super) type ReceivedDocument = (Uuid, Vec<u8>);

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
    /// The session's keys, once both sides are authenticated.
    channel: Option<Channel>,
    /// SHA-256 of each handshake message handled: one delivered again changes nothing.
    handled: Vec<[u8; 32]>,
    initiator: bool,
    finished: bool,
    max_message_bytes: usize,
    /// Records received and stored (a record that brought nothing new, or the content of an
    /// erased record, is not counted).
    pub received: usize,
    /// Records received and not taken: outside the scopes, or holding changes this device
    /// cannot take from a peer (in its own name, or of a revoked device). The others are.
    pub refused: usize,
    /// Records the other side asked for that did not fit in this session's messages: the
    /// session ends all the same; another one (or a sync with the hub) brings them.
    pub left_over: usize,
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

/// The documents one peer message carries: up to this much, and one more (`peer_documents`),
/// whichever side's message size, so that what one side packs the other always takes.
const DOCUMENTS_PER_MESSAGE_BYTES: usize = 1 << 20;

/// The most a peer message may expand to, and the most its sealed bytes may take (a
/// compressed frame of that much, which is never much larger). Room for the documents the
/// other side packs (`DOCUMENTS_PER_MESSAGE_BYTES`, then one record as large as a record may
/// be): a record of 1.8 MB, whatever its size was, stopped every session of the two phones.
fn message_limits(max_message_bytes: usize) -> (usize, usize) {
    let documents = DOCUMENTS_PER_MESSAGE_BYTES
        + DocumentLimits::STANDARD.max_bytes
        + DocumentLimits::STANDARD.max_bytes / 8;
    let expanded = max_message_bytes.saturating_mul(8).max(documents);
    (
        expanded,
        expanded.saturating_add(expanded / 64).saturating_add(4096),
    )
}

/// A reconciliation message as it goes on the link: encoded (`PEER_TAG`), then sealed as the
/// next message of this side. The plaintext is zeroed once sealed.
fn seal_message(channel: &mut Channel, message: &PeerMessage) -> Vec<u8> {
    channel.seal(&Zeroizing::new(wire::encode(wire::PEER_TAG, message)))
}

/// What reconciliation needs, worked out once the other side is authenticated.
struct Authenticated {
    negentropy: Negentropy<'static, NegentropyStorageVector>,
    items: HashMap<[u8; 32], Uuid>,
    scopes: Vec<Scope>,
}

/// What a handshake message moves the session to.
enum Handshaken {
    /// The answerer replied to a hello.
    Replied { stage: Stage, reply: Vec<u8> },
    /// The initiator checked the reply and sends its proof.
    Proved {
        reconciling: Box<Authenticated>,
        peer: Box<Certificate>,
        channel: Box<Channel>,
        proof: Vec<u8>,
    },
    /// The answerer checked the proof; its first frame is handled next.
    Accepted {
        reconciling: Box<Authenticated>,
        peer: Box<Certificate>,
        channel: Box<Channel>,
        first: Vec<u8>,
    },
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

    /// Seals `message` as this side's next message to the other side (what `peer_step`
    /// returns is sealed so): for tools and tests that play a peer. Only once authenticated.
    pub fn seal(&mut self, message: &PeerMessage) -> Result<Vec<u8>> {
        let channel = self
            .channel
            .as_mut()
            .ok_or_else(|| handshake_error("reconciliation before authentication"))?;
        Ok(seal_message(channel, message))
    }

    fn negentropy(&mut self) -> Result<&mut Negentropy<'static, NegentropyStorageVector>> {
        self.negentropy
            .as_mut()
            .ok_or_else(|| handshake_error("reconciliation before authentication"))
    }

    /// Both sides are authenticated: reconciliation starts, sealed under `channel`.
    fn run(&mut self, reconciling: Authenticated, peer: Certificate, channel: Channel) {
        self.negentropy = Some(reconciling.negentropy);
        self.items = reconciling.items;
        self.scopes = reconciling.scopes;
        self.peer = Some(peer);
        self.channel = Some(channel);
        self.stage = Stage::Running;
    }
}

impl Store {
    fn peer_items(
        &self,
        filter: &PeerScope,
        receiver: &Scope,
        own: &Scope,
    ) -> Result<(NegentropyStorageVector, HashMap<[u8; 32], Uuid>)> {
        let mut storage = NegentropyStorageVector::new();
        let mut items = HashMap::new();
        // What both certificates cover: the receiver refuses a record outside the sender's
        // (a record this device still holds after its user lost the area, waiting to go), and
        // would end the session on it.
        let mut allowed = self.ids_for(receiver)?;
        let own = self.ids_for(own)?;
        allowed.retain(|id| own.contains(id));
        // A record the hub refused is this phone's to correct: a peer could never send it on.
        let refused = store::sync_state::refused_ids(&self.conn)?;
        for (id, heads) in store::queries::heads_in(&self.conn, &filter.areas)? {
            if !allowed.contains(&id) || refused.contains(&id) {
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
            channel: None,
            handled: Vec::new(),
            initiator,
            finished: false,
            max_message_bytes,
            received: 0,
            refused: 0,
            left_over: 0,
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

    /// Sets up reconciliation over the records the authenticated peer may receive.
    fn authenticated(
        &self,
        session: &PeerSession,
        peer: &Certificate,
        own: &Certificate,
    ) -> Result<Authenticated> {
        if peer.device == own.device {
            return Err(handshake_error(
                "the peer presented this device's own certificate",
            ));
        }
        let reference = self.reference();
        let theirs = peer.principal().scope(&reference);
        let ours = own.principal().scope(&reference);
        let (storage, items) = self.peer_items(&session.filter, &theirs, &ours)?;
        // negentropy takes 0 (no limit) or at least 4096.
        let frame_limit = (session.max_message_bytes as u64 / 2).max(4096);
        Ok(Authenticated {
            negentropy: Negentropy::owned(storage, frame_limit)
                .map_err(|_| protocol("reconciler refused its settings"))?,
            items,
            scopes: vec![theirs, ours],
        })
    }

    /// Starts a session as the initiator: returns it and the first message for the other side
    /// (its hello: a nonce and an ephemeral key). `scope` narrows what is offered to some
    /// areas.
    pub fn peer_start(
        &self,
        scope: &PeerScope,
        max_message_bytes: usize,
    ) -> Result<(PeerSession, Vec<u8>)> {
        let mut session = self.peer_session(scope, true, max_message_bytes);
        // A device without a certificate cannot go further: it is told now.
        self.own_certificate()?;
        let nonce = fresh_nonce();
        let ephemeral = Ephemeral::generate();
        let hello = Handshake::Hello {
            version: HANDSHAKE_VERSION,
            nonce,
            ephemeral: ephemeral.public(),
        };
        session.stage = Stage::AwaitReply { nonce, ephemeral };
        Ok((session, wire::encode(HANDSHAKE_TAG, &hello)))
    }

    /// Starts a session as the side that answers. `scope` narrows what is offered.
    pub fn peer_accept(&self, scope: &PeerScope, max_message_bytes: usize) -> Result<PeerSession> {
        self.own_certificate()?;
        Ok(self.peer_session(scope, false, max_message_bytes))
    }

    /// The handshake's steps; returns the reply to send. A message handled before (delivered
    /// twice) changes nothing and gets no reply; any other message the stage does not expect
    /// is refused, and leaves the session as it was.
    fn peer_handshake(
        &mut self,
        session: &mut PeerSession,
        message: &[u8],
    ) -> Result<Option<Vec<u8>>> {
        let digest: [u8; 32] = Sha256::digest(message).into();
        if session.handled.contains(&digest) {
            return Ok(None);
        }
        let handshake = decode_handshake(message)?;
        let handshaken = self.handshake_step(session, handshake)?;
        session.handled.push(digest);
        match handshaken {
            Handshaken::Replied { stage, reply } => {
                session.stage = stage;
                Ok(Some(reply))
            }
            // The peer's certificate, checked, may be newer than this device's directory holds.
            Handshaken::Proved {
                reconciling,
                peer,
                channel,
                proof,
            } => {
                self.learn_certificate(&peer)?;
                session.run(*reconciling, *peer, *channel);
                Ok(Some(proof))
            }
            Handshaken::Accepted {
                reconciling,
                peer,
                channel,
                first,
            } => {
                self.learn_certificate(&peer)?;
                session.run(*reconciling, *peer, *channel);
                self.peer_sealed(session, &first)
            }
        }
    }

    /// Works out what a handshake message moves the session to, changing nothing of it.
    fn handshake_step(&self, session: &PeerSession, handshake: Handshake) -> Result<Handshaken> {
        match (&session.stage, handshake) {
            (
                Stage::AwaitHello,
                Handshake::Hello {
                    version: _,
                    nonce: their_nonce,
                    ephemeral: theirs,
                },
            ) => {
                let (_, ours) = self.own_certificate()?;
                let nonce = fresh_nonce();
                let ephemeral = Ephemeral::generate();
                let public = ephemeral.public();
                let exchanged = exchanged((&their_nonce, &theirs), (&nonce, &public));
                let answered = with_certificate(&exchanged, &ours);
                let signature = self
                    .device_keys()?
                    .sign(&signed_part(b"answerer", &answered));
                let mut keys = ephemeral.channel(&theirs, &exchanged, false, Keys::Handshake)?;
                let reply = Handshake::Reply {
                    nonce,
                    ephemeral: public,
                    identity: seal_identity(&mut keys, ours, signature),
                };
                Ok(Handshaken::Replied {
                    stage: Stage::AwaitProof {
                        ephemeral,
                        theirs,
                        exchanged,
                        answered,
                    },
                    reply: wire::encode(HANDSHAKE_TAG, &reply),
                })
            }
            (
                Stage::AwaitReply {
                    nonce: our_nonce,
                    ephemeral,
                },
                Handshake::Reply {
                    nonce: their_nonce,
                    ephemeral: theirs,
                    identity,
                },
            ) => {
                let exchanged =
                    exchanged((our_nonce, &ephemeral.public()), (&their_nonce, &theirs));
                let mut keys = ephemeral.channel(&theirs, &exchanged, true, Keys::Handshake)?;
                let answerer = open_identity(&mut keys, &identity)?;
                let peer = self.trust()?.check(&answerer.certificate)?;
                let answered = with_certificate(&exchanged, &answerer.certificate);
                verify_device(
                    &peer.keys,
                    &signed_part(b"answerer", &answered),
                    &signature_of(&answerer.signature)?,
                    "peer handshake",
                )?;
                let (own, ours) = self.own_certificate()?;
                let transcript = with_certificate(&answered, &ours);
                let mut channel = ephemeral.channel(&theirs, &transcript, true, Keys::Session)?;
                let mut reconciling = self.authenticated(session, &peer, &own)?;
                let frame = reconciling
                    .negentropy
                    .initiate()
                    .map_err(|_| protocol("could not start reconciliation"))?;
                let first = PeerMessage {
                    reconcile: Some(frame),
                    documents: Vec::new(),
                    wanted: Vec::new(),
                    done: false,
                };
                let signature = self
                    .device_keys()?
                    .sign(&signed_part(b"initiator", &transcript));
                let proof = Handshake::Proof {
                    identity: seal_identity(&mut keys, ours, signature),
                    first: seal_message(&mut channel, &first),
                };
                Ok(Handshaken::Proved {
                    reconciling: Box::new(reconciling),
                    peer: Box::new(peer),
                    channel: Box::new(channel),
                    proof: wire::encode(HANDSHAKE_TAG, &proof),
                })
            }
            (
                Stage::AwaitProof {
                    ephemeral,
                    theirs,
                    exchanged,
                    answered,
                },
                Handshake::Proof { identity, first },
            ) => {
                // The initiator's identity is its first message under the handshake's keys.
                let mut keys = ephemeral.channel(theirs, exchanged, false, Keys::Handshake)?;
                let initiator = open_identity(&mut keys, &identity)?;
                let peer = self.trust()?.check(&initiator.certificate)?;
                let transcript = with_certificate(answered, &initiator.certificate);
                verify_device(
                    &peer.keys,
                    &signed_part(b"initiator", &transcript),
                    &signature_of(&initiator.signature)?,
                    "peer handshake",
                )?;
                let channel = ephemeral.channel(theirs, &transcript, false, Keys::Session)?;
                let (own, _) = self.own_certificate()?;
                let reconciling = self.authenticated(session, &peer, &own)?;
                Ok(Handshaken::Accepted {
                    reconciling: Box::new(reconciling),
                    peer: Box::new(peer),
                    channel: Box::new(channel),
                    first,
                })
            }
            _ => Err(handshake_error("unexpected message")),
        }
    }

    /// Handles a message from the other side; returns the reply to send, or `None` when there
    /// is nothing to send: the session is complete (`PeerSession::is_finished`), or the message
    /// was one already handled, delivered again (the next is awaited). A reply returned as the
    /// session finishes is its last message: send it, the other side finishes on it. Received
    /// documents are merged in one transaction.
    ///
    /// After the handshake every message is sealed under the session's keys: one that is not
    /// (plaintext, another session's, altered) is refused as `IdentityError::PeerMessage`,
    /// and leaves the session as it was.
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
            return Err(handshake_error(
                "not the handshake's next message (damaged, from another session, or sent before the handshake ended)",
            ));
        }
        self.peer_sealed(session, message)
    }

    /// Opens a sealed message and handles it.
    fn peer_sealed(&mut self, session: &mut PeerSession, sealed: &[u8]) -> Result<Option<Vec<u8>>> {
        let (limit, sealed_limit) = message_limits(session.max_message_bytes);
        if sealed.len() > sealed_limit {
            return Err(DecodeError::TooLarge {
                limit: sealed_limit,
            }
            .into());
        }
        let channel = session
            .channel
            .as_mut()
            .ok_or_else(|| handshake_error("reconciliation before authentication"))?;
        let plain = match channel.open(sealed)? {
            Opened::Next(plain) => plain,
            // Handled when it first came.
            Opened::Again => return Ok(None),
        };
        let message: PeerMessage = wire::decode(wire::PEER_TAG, "peer message", &plain, limit)?;
        drop(plain);
        let reply = self.peer_message(session, message)?;
        Ok(reply.map(|reply| {
            let channel = session.channel.as_mut();
            seal_message(channel.expect("a running session has its keys"), &reply)
        }))
    }

    /// Handles an opened message: merges its documents, and works out the reply.
    fn peer_message(
        &mut self,
        session: &mut PeerSession,
        message: PeerMessage,
    ) -> Result<Option<PeerMessage>> {
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
                // Nothing differs: one last, empty message tells the answerer so, and it ends
                // there without a reply (it would otherwise wait for a message that never
                // comes).
                session.finished = true;
                return Ok(Some(PeerMessage {
                    reconcile: None,
                    documents,
                    wanted,
                    done: true,
                }));
            }
            PeerMessage {
                done: next.is_none(),
                reconcile: next,
                documents,
                wanted,
            }
        } else {
            if message.done
                && message.reconcile.is_none()
                && message.wanted.is_empty()
                && message.documents.is_empty()
            {
                // The initiator found nothing differs: the session ends here.
                session.finished = true;
                return Ok(None);
            }
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
        Ok(Some(reply))
    }

    fn peer_documents(
        &self,
        session: &mut PeerSession,
        wanted: &[[u8; 32]],
    ) -> Result<Vec<(Uuid, Vec<u8>)>> {
        let mut documents = Vec::new();
        let mut size = 0;
        let budget = session
            .max_message_bytes
            .saturating_mul(4)
            .min(DOCUMENTS_PER_MESSAGE_BYTES);
        for (n, item) in wanted.iter().enumerate() {
            if size > budget {
                // A peer session is for a handful of devices' differences; a larger gap is a
                // job for the hub, a bundle or another session (`left_over` says so).
                session.left_over += wanted.len() - n;
                break;
            }
            let Some(id) = session.items.get(item) else {
                continue;
            };
            if let Some((_, _, bytes)) = store::find_row(&self.conn, *id)? {
                size += bytes.len();
                documents.push((*id, bytes));
                session.sent += 1;
            }
        }
        Ok(documents)
    }

    /// Of the documents a peer or a bundle brought, those this device takes, and how many it
    /// refused (`check_received`): one record it may not take never stops the others (a case
    /// relayed from a phone reset before it synced, or forged in another device's name, cut
    /// two phones off from each other for good). Bytes that do not decode are damaged input:
    /// `damaged` says so, for the record.
    pub(super) fn received_to_take<'d>(
        &self,
        senders: &Senders<'_>,
        documents: &'d [ReceivedDocument],
        damaged: impl Fn(Uuid, Error) -> Error,
    ) -> Result<(Vec<&'d ReceivedDocument>, usize)> {
        let mut taken = Vec::with_capacity(documents.len());
        let mut refused = 0;
        for received in documents {
            let (id, bytes) = received;
            match self.check_received(senders, *id, bytes) {
                Ok(()) => taken.push(received),
                Err(Error::Identity(_) | Error::NotAllowed { .. }) => refused += 1,
                Err(e @ Error::Storage(_)) => return Err(e),
                Err(e) => return Err(damaged(*id, e)),
            }
        }
        Ok((taken, refused))
    }

    /// What a peer or a bundle's maker may bring this device: the scopes a record must lie in
    /// (the sender's and this device's own), the devices the hub revoked as this device last
    /// heard, and who the devices it knows are (its directory, and `sender`).
    pub(super) fn senders<'s>(
        &self,
        scopes: &'s [&'s Scope],
        sender: &Certificate,
    ) -> Result<Senders<'s>> {
        let directory = self.directory()?;
        Ok(Senders {
            scopes,
            revoked: self.trust()?.revoked,
            known: KnownDevices::new(directory.iter().chain([sender])),
            sender: received::Sender {
                device: sender.device,
                role: sender.role,
            },
        })
    }

    /// Whether a document received from a peer or in a bundle may be merged: it lies in every
    /// one of the scopes (`check_within`), holds no change in this device's name that this
    /// device lacks (`check_own_changes`), nor one made on a revoked device that it lacks
    /// (`check_no_revoked_changes`), nor one it let go as never to be taken
    /// (`erasure::keep_given_up`), and each change it lacks is its named author's, within
    /// their role, on a record of fields its kind defines (`received::check_changes`).
    pub(super) fn check_received(
        &self,
        senders: &Senders<'_>,
        id: Uuid,
        bytes: &[u8],
    ) -> Result<()> {
        let document = codec::load(id, bytes)?;
        check_within(senders.scopes, id, &document)?;
        let held = match store::find_row(&self.conn, id)? {
            Some((_, _, stored)) => Some(codec::load(id, &stored)?),
            None => None,
        };
        // The changes this device's copy lacks, in causal order: what every check below judges.
        let lacking: Vec<automerge::ChangeMetadata<'_>> = document
            .get_changes_meta(&[])
            .into_iter()
            .filter(|c| {
                held.as_ref()
                    .is_none_or(|h| h.get_change_meta_by_hash(&c.hash).is_none())
            })
            .collect();
        self.check_own_changes(id, &document, &lacking)?;
        check_no_revoked_changes(&senders.revoked, id, &lacking)?;
        // Changes this device let go when the hub said they would never come.
        let hashes: Vec<automerge::ChangeHash> = lacking.iter().map(|c| c.hash).collect();
        if erasure::any_given_up(&self.conn, &hashes)? {
            return Err(Error::NotAllowed {
                rule: format!(
                    "record {id} holds changes the hub will never take, which this device let go: it is not taken from a peer or a bundle"
                ),
            });
        }
        received::check_changes(
            (&senders.known, senders.sender),
            id,
            (&document, bytes.len()),
            held.as_ref(),
            &lacking,
            (
                &self.reference(),
                &store::sync_state::today(&self.conn, false)?,
            ),
        )
    }

    /// A device never gets its own changes back from a peer or a bundle, except ones it holds:
    /// a change under one of its actors (the actor's first 16 bytes are the device's id) that
    /// it lacks was written in its name elsewhere, and would reach the hub as its own. The
    /// content of an erased record is let through: the merge drops it. (A store restored from
    /// an older copy gets its later changes back from the hub.)
    fn check_own_changes(
        &self,
        id: Uuid,
        document: &Automerge,
        lacking: &[automerge::ChangeMetadata<'_>],
    ) -> Result<()> {
        let device = self.device_id();
        if !made_on_any(lacking, |made_on| made_on == device) {
            return Ok(());
        }
        if erasure::is_erased(&self.conn, id)?
            || erasure::any_erased_change(&self.conn, &codec::history_roots(document, &[]))?
        {
            return Ok(());
        }
        Err(IdentityError::ForgedOwnChange { record: id }.into())
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
        let peer = session
            .peer
            .as_ref()
            .ok_or_else(|| protocol("records before the peer's certificate"))?;
        let senders = self.senders(&scopes, peer)?;
        let (taken, refused) = self.received_to_take(&senders, documents, |_, e| e)?;
        session.refused += refused;
        let stored = self.receive(|merging| {
            let mut stored = 0;
            for (id, bytes) in &taken {
                // Nothing new, or an erased record's content (dropped): nothing stored.
                stored += usize::from(merging.merge(*id, bytes)?.changed);
            }
            Ok(stored)
        })?;
        session.received += stored;
        Ok(())
    }
}

/// What a peer or a bundle's maker may bring (`Store::senders`).
pub(super) struct Senders<'s> {
    scopes: &'s [&'s Scope],
    revoked: BTreeSet<Uuid>,
    known: KnownDevices,
    sender: received::Sender,
}

/// Changes made on a device the hub revoked (`revoked`, as this device last heard) among those
/// this store lacks (`lacking`): they could be a lost phone's thief's, and the hub will never
/// take them from anyone but that device. Refused; those this store holds already (taken by
/// the hub before the revocation, most often) go on.
fn check_no_revoked_changes(
    revoked: &BTreeSet<Uuid>,
    id: Uuid,
    lacking: &[automerge::ChangeMetadata<'_>],
) -> Result<()> {
    if made_on_any(lacking, |device| revoked.contains(&device)) {
        return Err(Error::NotAllowed {
            rule: format!(
                "record {id} holds changes made on a revoked device that the hub never received: it is not taken from a peer or a bundle"
            ),
        });
    }
    Ok(())
}

/// Whether any of `changes` was made on a device `made_on` picks.
fn made_on_any(changes: &[automerge::ChangeMetadata<'_>], made_on: impl Fn(Uuid) -> bool) -> bool {
    changes
        .iter()
        .any(|change| doc::device_of_actor(&change.actor).is_some_and(&made_on))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A hello as version 1 wrote it: no ephemeral key.
    #[derive(Serialize, Deserialize)]
    enum HandshakeV1 {
        Hello {
            version: u8,
            #[serde(with = "serde_bytes")]
            certificate: Vec<u8>,
            nonce: [u8; 32],
        },
    }

    /// A hello as version 2 wrote it: its certificate in clear.
    #[derive(Serialize, Deserialize)]
    enum HandshakeV2 {
        Hello {
            version: u8,
            #[serde(with = "serde_bytes")]
            certificate: Vec<u8>,
            nonce: [u8; 32],
            ephemeral: [u8; 32],
        },
    }

    /// Refused as another version's, saying what the user does about it.
    fn unsupported(result: Result<Handshake>) -> bool {
        matches!(
            &result,
            Err(e @ Error::Identity(IdentityError::UnsupportedVersion { .. }))
                if e.to_string().contains("another version of the app")
        )
    }

    #[test]
    fn a_hello_of_another_version_is_refused_as_such_on_both_sides() {
        // Versions 1 and 2 to this version.
        let v1 = HandshakeV1::Hello {
            version: 1,
            certificate: vec![1; 200],
            nonce: [2; 32],
        };
        let v2 = HandshakeV2::Hello {
            version: 2,
            certificate: vec![1; 200],
            nonce: [2; 32],
            ephemeral: [3; 32],
        };
        for old in [
            wire::encode(HANDSHAKE_TAG, &v1),
            wire::encode(HANDSHAKE_TAG, &v2),
        ] {
            assert!(unsupported(decode_handshake(&old)));
        }
        // This version to the older ones: they read the version first, and refuse it.
        let hello = Handshake::Hello {
            version: HANDSHAKE_VERSION,
            nonce: [2; 32],
            ephemeral: [3; 32],
        };
        let bytes = wire::encode(HANDSHAKE_TAG, &hello);
        let HelloOfAnyVersion::Hello { version } =
            wire::decode(HANDSHAKE_TAG, "peer handshake", &bytes, MAX_HANDSHAKE_BYTES).unwrap();
        assert_eq!(version, 3);
        assert!(matches!(
            decode_handshake(&bytes),
            Ok(Handshake::Hello { .. })
        ));
        // A later version.
        let later = Handshake::Hello {
            version: HANDSHAKE_VERSION + 1,
            nonce: [2; 32],
            ephemeral: [3; 32],
        };
        assert!(unsupported(decode_handshake(&wire::encode(
            HANDSHAKE_TAG,
            &later
        ))));
    }
}

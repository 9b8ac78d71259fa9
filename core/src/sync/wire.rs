//! Sync messages and their encoding.
//!
//! A message is a 4-byte tag, then a zstd frame (with its content checksum) of the postcard
//! encoding of the message. Many documents travel in one message and are compressed together,
//! which is where most of the bytes are saved: documents of the same kind share their field names
//! and much of their shape.
//!
//! Decoding is bounded: the decompressed size is capped before any allocation follows from it,
//! and postcard checks every length against the bytes actually present.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

pub use crate::domain::rights::UserProfile;
pub use crate::error::DecodeError;

use crate::codec::decompress_bounded;
use crate::domain::attachment::AttachmentLimits;
use crate::domain::limits::DocumentLimit;
use crate::identity::{HubPublic, PublicKeys};

pub(crate) const REQUEST_TAG: [u8; 4] = *b"VGq1";
pub(crate) const RESPONSE_TAG: [u8; 4] = *b"VGr1";
pub(crate) const PEER_TAG: [u8; 4] = *b"VGp1";

pub(crate) fn encode<T: Serialize>(tag: [u8; 4], message: &T) -> Vec<u8> {
    frame(
        tag,
        &postcard::to_stdvec(message).expect("sync messages serialize"),
    )
}

/// A message's postcard bytes, compressed behind its tag, in one frame that says its size.
fn frame(tag: [u8; 4], plain: &[u8]) -> Vec<u8> {
    // Batches of documents: level 7 gives within 1 % of level 9's size (a first sync of W1:
    // 1.207 against 1.198 times zstd of the records as JSON; level 5: 1.275), and level 9's
    // compression was two thirds of the hub's CPU in that sync. Small messages gain nothing
    // from either.
    const BATCH: usize = 16 * 1024;
    thread_local! {
        // A context made for each small message cost more than compressing it: a streamed
        // frame, whose size zstd does not know, set up and cleared the tables of a large input
        // however small the message (with this, the hub's CPU per sync under `vigie-bench
        // hub-load` fell by 4 to 11 %). Compressed in one call, the frame says its size and the
        // tables fit the message. Batches get a context of their own, so that no thread keeps
        // a large one.
        static SMALL: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    let compress = |compressor: &mut zstd::bulk::Compressor<'static>| {
        compressor.include_checksum(true)?;
        let mut out = std::io::Cursor::new(Vec::with_capacity(
            tag.len() + zstd::zstd_safe::compress_bound(plain.len()),
        ));
        out.get_mut().extend_from_slice(&tag);
        out.set_position(tag.len() as u64);
        compressor.compress_to_buffer(plain, &mut out)?;
        let mut out = out.into_inner();
        out.shrink_to_fit();
        std::io::Result::Ok(out)
    };
    if plain.len() >= BATCH {
        compress(&mut zstd::bulk::Compressor::new(7).expect("zstd context"))
    } else {
        SMALL.with(|cell| {
            let mut cell = cell.borrow_mut();
            let compressor = match &mut *cell {
                Some(compressor) => compressor,
                empty => empty.insert(zstd::bulk::Compressor::new(3).expect("zstd context")),
            };
            compress(compressor)
        })
    }
    .expect("in-memory compression")
}

// Byte strings are written with `serde_bytes` (`#[serde(with = ...)]`): postcard then copies
// them whole, where a plain `Vec<u8>` went through serde one byte at a time. The bytes on the
// wire are the same (a length, then the bytes), so messages of earlier versions read as before.

/// `Vec<(Uuid, Vec<u8>)>`, documents by record, with each document written whole.
pub(crate) mod documents {
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_bytes::{ByteBuf, Bytes};
    use uuid::Uuid;

    pub(crate) fn serialize<S: Serializer>(
        documents: &[(Uuid, Vec<u8>)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(documents.iter().map(|(id, d)| (id, Bytes::new(d))))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<(Uuid, Vec<u8>)>, D::Error> {
        let documents = Vec::<(Uuid, ByteBuf)>::deserialize(d)?;
        Ok(documents
            .into_iter()
            .map(|(id, bytes)| (id, bytes.into_vec()))
            .collect())
    }
}

/// `Vec<Vec<u8>>`, with each byte string written whole.
mod byte_strings {
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_bytes::{ByteBuf, Bytes};

    pub(super) fn serialize<S: Serializer>(strings: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(strings.iter().map(|b| Bytes::new(b)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let strings = Vec::<ByteBuf>::deserialize(d)?;
        Ok(strings.into_iter().map(ByteBuf::into_vec).collect())
    }
}

pub(crate) fn decode<T: DeserializeOwned>(
    tag: [u8; 4],
    what: &'static str,
    bytes: &[u8],
    max_decompressed: usize,
) -> Result<T, DecodeError> {
    postcard::from_bytes(&unframe(tag, what, bytes, max_decompressed)?)
        .map_err(|_| DecodeError::Structure)
}

fn unframe(
    tag: [u8; 4],
    what: &'static str,
    bytes: &[u8],
    max_decompressed: usize,
) -> Result<Vec<u8>, DecodeError> {
    let body = bytes
        .strip_prefix(&tag)
        .ok_or(DecodeError::WrongTag { expected: what })?;
    decompress_bounded(body, max_decompressed)
}

// Requests and responses grow by fields added after the last ones, their "tail". postcard
// writes fields one after the other with nothing to delimit them: a message from an older
// peer simply ends before the tail, which then takes its defaults, and an older peer reading
// a newer message stops before it. A request leaves its tail out while it holds only
// defaults, so a new device's first request is byte for byte what an older device sends.

#[derive(Serialize)]
struct RequestHeadRef<'a> {
    #[serde(with = "serde_bytes")]
    actor: &'a Vec<u8>,
    cursor: &'a Option<Cursor>,
    push: &'a Vec<PushEntry>,
    refetch: &'a Vec<Uuid>,
    max_response_bytes: u32,
}

#[derive(Deserialize)]
struct RequestHead {
    #[serde(with = "serde_bytes")]
    actor: Vec<u8>,
    cursor: Option<Cursor>,
    push: Vec<PushEntry>,
    refetch: Vec<Uuid>,
    max_response_bytes: u32,
}

#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct RequestTail {
    receipt: i64,
}

/// The second tail: the device's identity (devices of this version and later).
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct RequestIdentityTail {
    identity: Option<RequestIdentity>,
}

/// The third tail: when the device's copy of the certificate directory was issued up to, so
/// that the hub may send only what is newer (`RequestIdentity::directory_issued_through`).
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct RequestDirectoryTail {
    directory_issued_through: Option<i64>,
}

/// The fourth tail: whether the device works out documents' heads itself.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct RequestFormatTail {
    headless_documents: bool,
}

/// The fifth tail: the user the store was opened for, until the hub certified the device
/// (`RequestIdentity::user`).
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct RequestUserTail {
    user: Option<Uuid>,
}

/// The sixth tail: the hub's incarnation the device last heard of (`SyncRequest::incarnation`).
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct RequestIncarnationTail {
    incarnation: Option<[u8; 16]>,
}

/// The seventh tail: the device's clock (`SyncRequest::device_clock`).
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct RequestClockTail {
    device_clock: Option<DeviceClock>,
}

#[derive(Serialize)]
struct ResponseHeadRef<'a> {
    acks: &'a Vec<PushAck>,
    records: &'a Vec<PullEntry>,
    cursor: &'a Cursor,
    more: bool,
    erased: &'a Vec<Uuid>,
}

#[derive(Deserialize)]
struct ResponseHead {
    acks: Vec<PushAck>,
    records: Vec<PullEntry>,
    cursor: Cursor,
    more: bool,
    erased: Vec<Uuid>,
}

#[derive(Serialize)]
struct ResponseTailRef<'a> {
    receipt: i64,
    tombstones: &'a Vec<Tombstone>,
    left_scope: &'a Vec<Uuid>,
    profile: &'a Option<UserProfile>,
}

#[derive(Default, Deserialize)]
struct ResponseTail {
    receipt: i64,
    tombstones: Vec<Tombstone>,
    left_scope: Vec<Uuid>,
    profile: Option<UserProfile>,
}

/// The response's second tail: what a newer hub adds (device identity, attachment limits).
#[derive(Serialize)]
struct ResponseTail2Ref<'a> {
    identity: &'a Option<IdentityUpdate>,
    attachment_limits: Option<AttachmentLimits>,
}

#[derive(Default, Deserialize)]
struct ResponseTail2 {
    identity: Option<IdentityUpdate>,
    attachment_limits: Option<AttachmentLimits>,
}

/// The response's third tail: whether its whole documents may come without their heads.
#[derive(Default, Serialize, Deserialize)]
struct ResponseTail3 {
    headless_documents: bool,
}

/// The response's fourth tail: the hub's signature over the directory it sends
/// (`Directory::signature`).
#[derive(Default, Serialize, Deserialize)]
struct ResponseTail4 {
    #[serde(with = "serde_bytes")]
    directory_signature: Option<[u8; 64]>,
}

/// The response's fifth tail: the hub holds less than the device was told (`SyncResponse::reoffer`).
#[derive(Default, Serialize, Deserialize)]
struct ResponseTail5 {
    reoffer: bool,
}

/// The response's sixth tail: the field and rule of each refusal the hub can tell them of
/// (`PushOutcome::Refused::detail`), by the index of its acknowledgement.
#[derive(Default, Serialize, Deserialize)]
struct ResponseTail6 {
    refusal_details: Vec<(u32, RefusalDetail)>,
}

/// The response's seventh tail: the hub's incarnation, when the device's request named
/// another or none (`SyncResponse::incarnation`).
#[derive(Default, Serialize, Deserialize)]
struct ResponseTail7 {
    incarnation: Option<[u8; 16]>,
}

/// `SyncResponse::push_retry_in_seconds`.
#[derive(Default, Serialize, Deserialize)]
struct ResponseTail8 {
    push_retry_in_seconds: Option<u32>,
}

/// `SyncResponse::hub_now_ms`.
#[derive(Default, Serialize, Deserialize)]
struct ResponseTail9 {
    hub_now_ms: Option<i64>,
}

/// `SyncResponse::waiting`.
#[derive(Default, Serialize, Deserialize)]
struct ResponseTail10 {
    waiting: Option<u64>,
}

/// The next part of a message, or its defaults if the message ends before it (an older
/// sender); returns it and the bytes after it.
fn take_part<T: DeserializeOwned + Default>(rest: &[u8]) -> Result<(T, &[u8]), DecodeError> {
    if rest.is_empty() {
        return Ok((T::default(), rest));
    }
    postcard::take_from_bytes(rest).map_err(|_| DecodeError::Structure)
}

/// A head, then a tail and a second tail if any bytes are left (else their defaults); returns
/// the bytes after them.
fn head_and_tails<
    H: DeserializeOwned,
    T: DeserializeOwned + Default,
    U: DeserializeOwned + Default,
>(
    plain: &[u8],
) -> Result<(H, T, U, &[u8]), DecodeError> {
    let (head, rest) = postcard::take_from_bytes::<H>(plain).map_err(|_| DecodeError::Structure)?;
    let (tail, rest) = take_part::<T>(rest)?;
    let (second, rest) = take_part::<U>(rest)?;
    Ok((head, tail, second, rest))
}

/// Encodes a request as a device sends it.
pub fn encode_request(request: &SyncRequest) -> Vec<u8> {
    let mut plain = postcard::to_stdvec(&RequestHeadRef {
        actor: &request.actor,
        cursor: &request.cursor,
        push: &request.push,
        refetch: &request.refetch,
        max_response_bytes: request.max_response_bytes,
    })
    .expect("sync messages serialize");
    let tail = RequestTail {
        receipt: request.receipt,
    };
    let second = RequestIdentityTail {
        identity: request.identity.clone(),
    };
    let third = RequestDirectoryTail {
        directory_issued_through: request
            .identity
            .as_ref()
            .and_then(|i| i.directory_issued_through),
    };
    let fourth = RequestFormatTail {
        headless_documents: request.headless_documents,
    };
    let fifth = RequestUserTail {
        user: request.identity.as_ref().and_then(|i| i.user),
    };
    let sixth = RequestIncarnationTail {
        incarnation: request.incarnation,
    };
    let seventh = RequestClockTail {
        device_clock: request.device_clock,
    };
    // The tails up to the last one that holds more than its defaults.
    let needed = [
        tail != RequestTail::default(),
        second != RequestIdentityTail::default(),
        third != RequestDirectoryTail::default(),
        fourth != RequestFormatTail::default(),
        fifth != RequestUserTail::default(),
        sixth != RequestIncarnationTail::default(),
        seventh != RequestClockTail::default(),
    ]
    .iter()
    .rposition(|held| *held)
    .map_or(0, |last| last + 1);
    let tails = [
        postcard::to_stdvec(&tail),
        postcard::to_stdvec(&second),
        postcard::to_stdvec(&third),
        postcard::to_stdvec(&fourth),
        postcard::to_stdvec(&fifth),
        postcard::to_stdvec(&sixth),
        postcard::to_stdvec(&seventh),
    ];
    for part in &tails[..needed] {
        plain.extend(part.as_deref().expect("sync messages serialize"));
    }
    frame(REQUEST_TAG, &plain)
}

pub fn decode_request(bytes: &[u8], max_decompressed: usize) -> Result<SyncRequest, DecodeError> {
    let plain = unframe(REQUEST_TAG, "sync request", bytes, max_decompressed)?;
    let (head, tail, second, rest): (RequestHead, RequestTail, RequestIdentityTail, _) =
        head_and_tails(&plain)?;
    let (third, rest) = take_part::<RequestDirectoryTail>(rest)?;
    let (fourth, rest) = take_part::<RequestFormatTail>(rest)?;
    let (fifth, rest) = take_part::<RequestUserTail>(rest)?;
    // Bytes after the parts this version knows are a newer device's, and ignored.
    let (sixth, rest) = take_part::<RequestIncarnationTail>(rest)?;
    let (seventh, _newer) = take_part::<RequestClockTail>(rest)?;
    let identity = second.identity.map(|identity| RequestIdentity {
        directory_issued_through: third.directory_issued_through,
        user: fifth.user,
        ..identity
    });
    Ok(SyncRequest {
        actor: head.actor,
        cursor: head.cursor,
        push: head.push,
        refetch: head.refetch,
        max_response_bytes: head.max_response_bytes,
        receipt: tail.receipt,
        identity,
        headless_documents: fourth.headless_documents,
        incarnation: sixth.incarnation,
        device_clock: seventh.device_clock,
    })
}

/// Encodes a response as a hub sends it.
pub fn encode_response(response: &SyncResponse) -> Vec<u8> {
    let mut plain = postcard::to_stdvec(&ResponseHeadRef {
        acks: &response.acks,
        records: &response.records,
        cursor: &response.cursor,
        more: response.more,
        erased: &response.erased,
    })
    .expect("sync messages serialize");
    plain.extend(
        postcard::to_stdvec(&ResponseTailRef {
            receipt: response.receipt,
            tombstones: &response.tombstones,
            left_scope: &response.left_scope,
            profile: &response.profile,
        })
        .expect("sync messages serialize"),
    );
    // Each tail is written when it, or one after it, holds more than its defaults.
    let directory_signature = response
        .identity
        .as_ref()
        .and_then(|identity| identity.directory.as_ref())
        .and_then(|directory| directory.signature);
    let refusal_details: Vec<(u32, RefusalDetail)> = response
        .acks
        .iter()
        .enumerate()
        .filter_map(|(i, ack)| match &ack.outcome {
            PushOutcome::Refused {
                detail: Some(detail),
                ..
            } => Some((u32::try_from(i).ok()?, detail.clone())),
            _ => None,
        })
        .collect();
    let tenth = response.waiting.is_some();
    let ninth = response.hub_now_ms.is_some() || tenth;
    let eighth = response.push_retry_in_seconds.is_some() || ninth;
    let seventh = response.incarnation.is_some() || eighth;
    let sixth = !refusal_details.is_empty() || seventh;
    let fifth = response.reoffer || sixth;
    let fourth = directory_signature.is_some() || fifth;
    let third = response.headless_documents || fourth;
    if response.identity.is_some() || response.attachment_limits.is_some() || third {
        plain.extend(
            postcard::to_stdvec(&ResponseTail2Ref {
                identity: &response.identity,
                attachment_limits: response.attachment_limits,
            })
            .expect("sync messages serialize"),
        );
    }
    if third {
        plain.extend(
            postcard::to_stdvec(&ResponseTail3 {
                headless_documents: response.headless_documents,
            })
            .expect("sync messages serialize"),
        );
    }
    if fourth {
        plain.extend(
            postcard::to_stdvec(&ResponseTail4 {
                directory_signature,
            })
            .expect("sync messages serialize"),
        );
    }
    if fifth {
        plain.extend(
            postcard::to_stdvec(&ResponseTail5 {
                reoffer: response.reoffer,
            })
            .expect("sync messages serialize"),
        );
    }
    if sixth {
        plain.extend(
            postcard::to_stdvec(&ResponseTail6 { refusal_details })
                .expect("sync messages serialize"),
        );
    }
    if seventh {
        plain.extend(
            postcard::to_stdvec(&ResponseTail7 {
                incarnation: response.incarnation,
            })
            .expect("sync messages serialize"),
        );
    }
    if eighth {
        plain.extend(
            postcard::to_stdvec(&ResponseTail8 {
                push_retry_in_seconds: response.push_retry_in_seconds,
            })
            .expect("sync messages serialize"),
        );
    }
    if ninth {
        plain.extend(
            postcard::to_stdvec(&ResponseTail9 {
                hub_now_ms: response.hub_now_ms,
            })
            .expect("sync messages serialize"),
        );
    }
    if tenth {
        plain.extend(
            postcard::to_stdvec(&ResponseTail10 {
                waiting: response.waiting,
            })
            .expect("sync messages serialize"),
        );
    }
    frame(RESPONSE_TAG, &plain)
}

pub fn decode_response(bytes: &[u8], max_decompressed: usize) -> Result<SyncResponse, DecodeError> {
    let plain = unframe(RESPONSE_TAG, "sync response", bytes, max_decompressed)?;
    let (head, tail, second, rest): (ResponseHead, ResponseTail, ResponseTail2, _) =
        head_and_tails(&plain)?;
    let (third, rest) = take_part::<ResponseTail3>(rest)?;
    // Bytes after the parts this version knows are a newer hub's, and ignored.
    let (fourth, rest) = take_part::<ResponseTail4>(rest)?;
    let (fifth, rest) = take_part::<ResponseTail5>(rest)?;
    let (sixth, rest) = take_part::<ResponseTail6>(rest)?;
    let (seventh, rest) = take_part::<ResponseTail7>(rest)?;
    let (eighth, rest) = take_part::<ResponseTail8>(rest)?;
    let (ninth, rest) = take_part::<ResponseTail9>(rest)?;
    let (tenth, _newer) = take_part::<ResponseTail10>(rest)?;
    let mut acks = head.acks;
    for (i, told) in sixth.refusal_details {
        if let Some(PushAck {
            outcome: PushOutcome::Refused { detail, .. },
            ..
        }) = usize::try_from(i).ok().and_then(|i| acks.get_mut(i))
        {
            *detail = Some(told);
        }
    }
    let mut identity = second.identity;
    if let Some(directory) = identity.as_mut().and_then(|i| i.directory.as_mut()) {
        directory.signature = fourth.directory_signature;
    }
    Ok(SyncResponse {
        acks,
        records: head.records,
        cursor: head.cursor,
        more: head.more,
        erased: head.erased,
        receipt: tail.receipt,
        tombstones: tail.tombstones,
        left_scope: tail.left_scope,
        profile: tail.profile,
        identity,
        attachment_limits: second.attachment_limits,
        headless_documents: third.headless_documents,
        reoffer: fifth.reoffer,
        incarnation: seventh.incarnation,
        push_retry_in_seconds: eighth.push_retry_in_seconds,
        hub_now_ms: ninth.hub_now_ms,
        waiting: tenth.waiting,
    })
}

/// Encodes a peer message as a device sends it (for tools, tests and fuzzing).
pub fn encode_peer_message(message: &PeerMessage) -> Vec<u8> {
    encode(PEER_TAG, message)
}

/// Where a device stands in the hub's change sequence. Issued by the hub, opaque to devices.
///
/// `since` is where the current pass started: changes after it are what the device lacks.
/// `after` is how far the pass has gone through the records ordered by their last change; a pass
/// cut into several messages keeps `since` until it completes. `scope` is a fingerprint of what
/// the device may receive: when its areas change, the hub starts over from zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub since: i64,
    pub after: i64,
    pub scope: u64,
}

/// A device's request (`encode_request`, `decode_request`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    /// The Automerge actor of the sending store; the hub checks it is bound to the device.
    pub actor: Vec<u8>,
    pub cursor: Option<Cursor>,
    pub push: Vec<PushEntry>,
    /// Records to be sent whole (their earlier changes could not be applied).
    pub refetch: Vec<Uuid>,
    /// The largest response the device wants, in bytes before compression.
    pub max_response_bytes: u32,
    /// The last `SyncResponse::receipt` this device applied: its pushes the hub numbered up to
    /// it are in this store. A store restored from an older copy sends an older receipt, and the
    /// hub sends back what it has from this device after it.
    pub receipt: i64,
    /// The device's public keys, for the hub to certify (none from a device of an earlier
    /// version, which then gets no certificate).
    pub identity: Option<RequestIdentity>,
    /// Whether the device works out the heads of whole documents itself: the hub then sends
    /// them without (`codec::columns::strip_heads`). False from a device of an earlier version.
    pub headless_documents: bool,
    /// The hub's incarnation the device last heard of (`SyncResponse::incarnation`), in the
    /// first request of a session: another than the hub's now tells it was restored from a
    /// backup since. `None` from a device of an earlier version, or one never told.
    pub incarnation: Option<[u8; 16]>,
    /// The device's clock and time zone as it sent a request that pushes (none from a device
    /// of an earlier version): the hub judges the days its records tell of against the hub's
    /// own time in that zone (`records::Today::at_hub`).
    pub device_clock: Option<DeviceClock>,
}

/// A device's clock as it sent a request (`SyncRequest::device_clock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceClock {
    /// Milliseconds since 1970, UTC, by the device's clock.
    pub now_ms: i64,
    /// The device's time zone, in minutes east of UTC.
    pub utc_offset_minutes: i32,
}

/// What a device presents of its identity with each request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestIdentity {
    pub keys: PublicKeys,
    /// The digest of the certificate directory it holds: the hub sends the directory only when
    /// it differs.
    pub directory: Option<[u8; 32]>,
    /// The digest of what it holds from the hub (`sync::identity`): when the hub's answer would
    /// be the same, it sends none, and a sync that moves nothing stays small.
    pub held: Option<[u8; 32]>,
    /// When the certificates of the directory it holds were issued up to (the latest): the hub
    /// then sends only the certificates issued after it, and the device works out the rest
    /// (`sync::identity`). Sent in a tail of its own, after the identity, so that hubs and
    /// devices of the version before read each other's messages as before.
    #[serde(skip)]
    pub directory_issued_through: Option<i64>,
    /// The user the store was opened for, sent until the hub certified the device: the hub
    /// binds nothing to a store opened for another user than its token's. In a tail of its own
    /// (`RequestUserTail`).
    #[serde(skip)]
    pub user: Option<Uuid>,
}

/// The hub's answer to `RequestIdentity`: its keys (pinned by the device at its first sync),
/// the device's current certificate, the signed revocation list, and the directory when it
/// changed. Certificates and the list are in their binary formats (`identity`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityUpdate {
    pub hub: HubPublic,
    #[serde(with = "serde_bytes")]
    pub certificate: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub revocations: Vec<u8>,
    pub directory: Option<Directory>,
}

/// The certificates of the other enrolled, unrevoked devices, and their digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    pub digest: [u8; 32],
    #[serde(with = "byte_strings")]
    pub certificates: Vec<Vec<u8>>,
    /// The hub's signature over `digest` (`HubKey::sign_directory`; none from a hub of an
    /// earlier version). Sent in a tail of its own, so that devices of earlier versions read
    /// the directory as before.
    #[serde(skip)]
    pub signature: Option<[u8; 64]>,
}

/// Changes of one record that the hub may lack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushEntry {
    pub id: Uuid,
    /// The record's heads on the device once these changes are applied.
    pub heads: Vec<[u8; 32]>,
    /// A whole document, or Automerge changes after the heads the hub was known to hold.
    #[serde(with = "serde_bytes")]
    pub changes: Vec<u8>,
}

/// The hub's response (`encode_response`, `decode_response`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncResponse {
    pub acks: Vec<PushAck>,
    pub records: Vec<PullEntry>,
    /// To be stored, and sent back next time, only once everything above is committed.
    pub cursor: Cursor,
    /// More records are waiting: send another request.
    pub more: bool,
    /// Records erased since the cursor: every copy must go, and none may come back. (Kept for
    /// devices of the previous version: `tombstones` says the same with the hashes.)
    pub erased: Vec<Uuid>,
    /// To be stored with the cursor: see `SyncRequest::receipt`.
    pub receipt: i64,
    /// The erased records of `erased`, each with the hashes of its history's first changes:
    /// any document holding one carries the erased content, under whatever id it comes.
    pub tombstones: Vec<Tombstone>,
    /// Records that left this device's scope (moved to an area it does not cover): it pushes
    /// what it has pending for them, then removes them. They may come back if the scope does.
    pub left_scope: Vec<Uuid>,
    /// The user's role and areas as the hub holds them now (none from a hub of the previous
    /// version): the device's workflow checks them, and when they differ from what the device
    /// last heard, the device removes what the new scope does not cover.
    pub profile: Option<UserProfile>,
    /// The device's certificate and what it needs to check others' (`RequestIdentity`).
    pub identity: Option<IdentityUpdate>,
    /// The limits on attachments the hub applies (none from a hub of the previous version):
    /// the device checks captures against them.
    pub attachment_limits: Option<AttachmentLimits>,
    /// Whether whole documents in this response may come without their heads (the request
    /// allowed it, and the hub is of this version or later).
    pub headless_documents: bool,
    /// The hub holds less than this device was told it does: its receipt, or its cursor, is
    /// beyond anything the hub recorded (the hub was restored from an older copy). The device
    /// offers every record it holds again, with its heads, so that its next pushes send what
    /// the hub lacks.
    pub reoffer: bool,
    /// The hub's incarnation, when the request named another or none: a hub restored from a
    /// backup takes a new one, so that every device learns it was (and offers again what it
    /// holds), whatever it sent since the backup. The device keeps it and names it next time.
    pub incarnation: Option<[u8; 16]>,
    /// Records of this request wait, past the changes the hub takes from one device in an
    /// hour: the seconds until pushing again is worth it (none from a hub of an earlier
    /// version, or when nothing waits for that).
    pub push_retry_in_seconds: Option<u32>,
    /// The hub's clock when it answered, in milliseconds since 1970 (none from a hub of an
    /// earlier version): a device compares its own with it (`SyncSummary::clock_offset_seconds`).
    pub hub_now_ms: Option<i64>,
    /// How many records of the device's scope the walk has still to send after this answer,
    /// counted in the first answer of a session that does not hold them all (none otherwise,
    /// and from a hub of an earlier version): the device shows its user how far a long first
    /// sync has gone (`SyncSummary::incoming_total`).
    pub waiting: Option<u64>,
}

/// An erased record, and the roots of its history (changes with no dependencies): every change
/// of the record descends from one of them, so no document can hold any of its content
/// without holding a root. 32 bytes for a record created in one place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    pub id: Uuid,
    pub roots: Vec<[u8; 32]>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushAck {
    pub id: Uuid,
    pub outcome: PushOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PushOutcome {
    /// Stored. `hub_heads` are the record's heads on the hub; `catch_up` holds the changes the
    /// device lacks to reach them (empty when it lacks none).
    Accepted {
        hub_heads: Vec<[u8; 32]>,
        #[serde(with = "serde_bytes")]
        catch_up: Vec<u8>,
        /// The device's clock, as seen in these changes, is far from the hub's.
        clock_skewed: bool,
    },
    /// Not stored. The device keeps its copy and is told why: the rule, and for a record whose
    /// content breaks one (`Refusal::BreaksValidation`) or that takes a step its user may not
    /// (`Refusal::StepNotAllowed`) the field and the rule's words when the hub can tell them. `detail` travels in the response's sixth tail (`encode_response`), so
    /// that a refusal reads the same to devices of earlier versions.
    Refused {
        reason: Refusal,
        #[serde(skip)]
        detail: Option<RefusalDetail>,
    },
    /// The record is no longer the user's to change (they lost its area): the changes are
    /// kept on the hub for a supervisor's review (or held there already, brought by a bundle
    /// and reviewed), and the record leaves the device.
    Quarantined,
    /// The record was erased: the device's copy must go.
    Erased,
}

/// The field of a refused record that breaks a rule, and the rule in words (a
/// `ValidationError`'s, or a `NotAllowed`'s with the field the step changes): never a value.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RefusalDetail {
    pub field: String,
    pub rule: String,
}

impl RefusalDetail {
    /// The detail told of `record` among those of a report (`SyncReport::refusal_details`).
    pub fn of(details: &[(Uuid, RefusalDetail)], record: Uuid) -> Option<&RefusalDetail> {
        details
            .iter()
            .find(|(id, _)| *id == record)
            .map(|(_, detail)| detail)
    }
}

impl From<crate::domain::validation::ValidationError> for RefusalDetail {
    fn from(e: crate::domain::validation::ValidationError) -> Self {
        RefusalDetail {
            field: e.field,
            rule: e.rule,
        }
    }
}

/// Why the hub refused a record. Reasons name rules, never content.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    thiserror::Error,
)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum Refusal {
    #[error("the record is outside the areas of this user")]
    OutOfScope,
    #[error("this user's role may not change records of this kind")]
    KindNotAllowed,
    #[error(
        "the changes include changes made on another device that the hub has not received from it"
    )]
    ForeignChanges,
    #[error("the changes depend on earlier changes the hub lacks")]
    MissingHistory,
    #[error("the changes are damaged and cannot be decoded")]
    Damaged,
    #[error("the record does not decode as a record of its kind")]
    Invalid,
    #[error("the record already exists with another kind")]
    WrongKind,
    /// The document is over one of the bounds on what a record may hold.
    #[error("the record exceeds the limit on {limit}")]
    OverLimit { limit: DocumentLimit },
    /// The record breaks a rule the phone checks too (`Record::validate`, and no event day
    /// after today: the phone judges by its clock, the hub by its own, so a phone whose clock
    /// runs days ahead learns it here).
    #[error("the record breaks a validation rule")]
    BreaksValidation,
    /// The record was captured with reference data (`captured_with`) the hub does not hold.
    #[error("the record names reference data versions the hub does not hold")]
    UnknownReference,
    /// The record's area is not a path of its country's area tree, or no tree is published for
    /// its country.
    #[error("the record's area is not a path of its country's area tree")]
    AreaNotInTree,
    /// A workflow step this user may not take: the role's (`rights`), or a step the record's
    /// state refuses (its detail says which rule).
    #[error("this workflow step is not allowed")]
    StepNotAllowed,
    /// A change names another user or device as its author.
    #[error("a change names another user or device as its author")]
    WrongAuthor,
    /// Changes made on a device the hub revoked, which it never received from that device (a
    /// peer or a bundle brought them): they will never come from it, and the record cannot be
    /// taken from another device. It stays on this one, offered to no peer.
    #[error(
        "the changes include changes made on a revoked device that the hub never received from it"
    )]
    AuthorRevoked,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullEntry {
    pub id: Uuid,
    /// A whole document, or the changes the device lacks.
    #[serde(with = "serde_bytes")]
    pub changes: Vec<u8>,
    /// The record's heads on the hub; empty for a whole document the device never had (the
    /// hub holds exactly what it sent).
    pub hub_heads: Vec<[u8; 32]>,
}

/// Peer-to-peer messages: range-based set reconciliation (negentropy) over (record, heads)
/// items, then the documents each side lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerMessage {
    /// The next negentropy frame, if reconciliation is still going on.
    #[serde(with = "serde_bytes")]
    pub reconcile: Option<Vec<u8>>,
    /// Documents the other side lacks (whole; merging a whole document is idempotent).
    #[serde(with = "documents")]
    pub documents: Vec<(Uuid, Vec<u8>)>,
    /// Items (hashes of record id and heads) this side needs documents for.
    pub wanted: Vec<[u8; 32]>,
    pub done: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{HubPublic, PublicKeys};

    fn request(receipt: i64, identity: Option<RequestIdentity>) -> SyncRequest {
        SyncRequest {
            actor: vec![1; 24],
            cursor: None,
            push: Vec::new(),
            refetch: vec![Uuid::nil()],
            max_response_bytes: 1 << 16,
            receipt,
            identity,
            headless_documents: false,
            incarnation: None,
            device_clock: None,
        }
    }

    fn identity() -> RequestIdentity {
        RequestIdentity {
            keys: PublicKeys {
                signing: [7; 32],
                agreement: [9; 32],
            },
            directory: Some([3; 32]),
            held: None,
            directory_issued_through: Some(1_700_000_000_000),
            user: Some(Uuid::from_u128(5)),
        }
    }

    /// A response that carries nothing but its receipt.
    fn empty_response(receipt: i64) -> SyncResponse {
        SyncResponse {
            receipt,
            ..SyncResponse::default()
        }
    }

    /// A hub's identity answer with placeholder bytes.
    fn identity_update(directory: Option<Directory>) -> IdentityUpdate {
        IdentityUpdate {
            hub: HubPublic {
                signing: [1; 32],
                agreement: [2; 32],
            },
            certificate: vec![4; 10],
            revocations: vec![5; 10],
            directory,
        }
    }

    fn plain(tag: [u8; 4], bytes: &[u8]) -> Vec<u8> {
        unframe(tag, "test", bytes, 1 << 20).unwrap()
    }

    /// Each message with byte strings, as the versions before `serde_bytes` wrote it: plain
    /// `Vec<u8>` fields.
    #[test]
    fn byte_strings_are_written_as_the_versions_before_wrote_them() {
        #[derive(Serialize, Deserialize)]
        struct PlainPull {
            id: Uuid,
            changes: Vec<u8>,
            hub_heads: Vec<[u8; 32]>,
        }
        #[derive(Serialize, Deserialize)]
        struct PlainPeer {
            reconcile: Option<Vec<u8>>,
            documents: Vec<(Uuid, Vec<u8>)>,
            wanted: Vec<[u8; 32]>,
            done: bool,
        }
        #[derive(Serialize, Deserialize)]
        struct PlainDirectory {
            digest: [u8; 32],
            certificates: Vec<Vec<u8>>,
        }
        fn same<A: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug, P: Serialize>(
            now: &A,
            before: &P,
        ) {
            let written = postcard::to_stdvec(before).unwrap();
            assert_eq!(postcard::to_stdvec(now).unwrap(), written);
            assert_eq!(&postcard::from_bytes::<A>(&written).unwrap(), now);
        }
        let id = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        // Lengths on one byte and on two (postcard's varint), and none.
        for bytes in [
            vec![],
            vec![0x85, 0x6f, 0x4a],
            (0..=255u8).cycle().take(300).collect(),
        ] {
            same(
                &PullEntry {
                    id,
                    changes: bytes.clone(),
                    hub_heads: vec![[5; 32]],
                },
                &PlainPull {
                    id,
                    changes: bytes.clone(),
                    hub_heads: vec![[5; 32]],
                },
            );
            for reconcile in [None, Some(bytes.clone())] {
                same(
                    &PeerMessage {
                        reconcile: reconcile.clone(),
                        documents: vec![(id, bytes.clone()), (Uuid::nil(), vec![1])],
                        wanted: vec![[2; 32]],
                        done: true,
                    },
                    &PlainPeer {
                        reconcile,
                        documents: vec![(id, bytes.clone()), (Uuid::nil(), vec![1])],
                        wanted: vec![[2; 32]],
                        done: true,
                    },
                );
            }
            same(
                &Directory {
                    digest: [4; 32],
                    certificates: vec![bytes.clone(), vec![9; 3]],
                    signature: None,
                },
                &PlainDirectory {
                    digest: [4; 32],
                    certificates: vec![bytes.clone(), vec![9; 3]],
                },
            );
        }
    }

    #[test]
    fn tails_are_read_by_this_version_and_skipped_by_older_ones() {
        // This version reads old requests (no tail, the receipt alone) and new ones.
        for sent in [
            request(0, None),
            request(5, None),
            request(0, Some(identity())),
        ] {
            assert_eq!(
                decode_request(&encode_request(&sent), 1 << 20).unwrap(),
                sent
            );
        }
        // A request of the previous version is byte for byte what it was: no identity, no tail.
        let old = plain(REQUEST_TAG, &encode_request(&request(0, None)));
        let (_, rest) = postcard::take_from_bytes::<RequestHead>(&old).unwrap();
        assert!(rest.is_empty());
        // An older hub reads a new request's head and receipt, and stops there.
        let new = plain(REQUEST_TAG, &encode_request(&request(4, Some(identity()))));
        let (_, rest) = postcard::take_from_bytes::<RequestHead>(&new).unwrap();
        let tail: RequestTail = postcard::from_bytes(rest).unwrap();
        assert_eq!(tail.receipt, 4);
        // And its identity, without the third tail (when the directory was issued up to).
        let (head, tail, second, newer): (RequestHead, RequestTail, RequestIdentityTail, _) =
            head_and_tails(&new).unwrap();
        assert_eq!((head.refetch.len(), tail.receipt), (1, 4));
        assert_eq!(
            second.identity.map(|i| i.directory),
            Some(identity().directory)
        );
        assert!(!newer.is_empty());

        let response = SyncResponse {
            left_scope: vec![Uuid::nil()],
            identity: Some(identity_update(None)),
            attachment_limits: Some(AttachmentLimits::default()),
            ..empty_response(9)
        };
        let bytes = encode_response(&response);
        assert_eq!(decode_response(&bytes, 1 << 20).unwrap(), response);
        // An older device reads the head and its tail, and ignores the identity after them.
        let new = plain(RESPONSE_TAG, &bytes);
        let (_, rest) = postcard::take_from_bytes::<ResponseHead>(&new).unwrap();
        let tail: ResponseTail = postcard::from_bytes(rest).unwrap();
        assert_eq!((tail.receipt, tail.left_scope), (9, vec![Uuid::nil()]));
        // And this version reads an older hub's response: no identity, no attachment limits.
        let old = SyncResponse {
            identity: None,
            attachment_limits: None,
            ..response
        };
        assert_eq!(
            decode_response(&encode_response(&old), 1 << 20).unwrap(),
            old
        );
    }

    #[test]
    fn headless_documents_are_asked_for_and_answered_in_tails_older_versions_skip() {
        // A device that works out heads says so in its fourth tail; the tails before it are
        // written with their defaults, and an older hub stops before it.
        let asking = SyncRequest {
            headless_documents: true,
            ..request(0, None)
        };
        let bytes = encode_request(&asking);
        assert_eq!(decode_request(&bytes, 1 << 20).unwrap(), asking);
        let unframed = plain(REQUEST_TAG, &bytes);
        let (_, tail, second, rest): (RequestHead, RequestTail, RequestIdentityTail, _) =
            head_and_tails(&unframed).unwrap();
        assert_eq!((tail.receipt, second.identity), (0, None));
        let (third, newer) = take_part::<RequestDirectoryTail>(rest).unwrap();
        assert_eq!(third, RequestDirectoryTail::default());
        assert!(!newer.is_empty());
        // A request of an older device (no fourth tail) asks for whole documents.
        let older = plain(REQUEST_TAG, &encode_request(&request(3, Some(identity()))));
        let older = frame(REQUEST_TAG, &older);
        assert!(!decode_request(&older, 1 << 20).unwrap().headless_documents);

        // The hub's answer says it in its third tail, after a second one of defaults.
        let answer = SyncResponse {
            headless_documents: true,
            ..empty_response(2)
        };
        let bytes = encode_response(&answer);
        assert_eq!(decode_response(&bytes, 1 << 20).unwrap(), answer);
        let unframed = plain(RESPONSE_TAG, &bytes);
        let (_, tail, second, rest): (ResponseHead, ResponseTail, ResponseTail2, _) =
            head_and_tails(&unframed).unwrap();
        assert_eq!(tail.receipt, 2);
        assert!(second.identity.is_none() && second.attachment_limits.is_none());
        assert!(!rest.is_empty());
        // An older hub's answer (no third tail) sends documents whole.
        let whole = SyncResponse {
            headless_documents: false,
            ..answer
        };
        assert!(
            !decode_response(&encode_response(&whole), 1 << 20)
                .unwrap()
                .headless_documents
        );
    }

    #[test]
    fn a_restored_hub_asks_for_records_again_in_a_tail_older_devices_skip() {
        let answer = SyncResponse {
            reoffer: true,
            ..empty_response(3)
        };
        let bytes = encode_response(&answer);
        assert_eq!(decode_response(&bytes, 1 << 20).unwrap(), answer);
        // A device of the version before reads every tail it knows, with their defaults.
        let unframed = plain(RESPONSE_TAG, &bytes);
        let (_, tail, second, rest): (ResponseHead, ResponseTail, ResponseTail2, _) =
            head_and_tails(&unframed).unwrap();
        assert_eq!(tail.receipt, 3);
        assert!(second.identity.is_none());
        let (third, rest) = take_part::<ResponseTail3>(rest).unwrap();
        assert!(!third.headless_documents);
        let (fourth, newer) = take_part::<ResponseTail4>(rest).unwrap();
        assert!(fourth.directory_signature.is_none());
        assert!(!newer.is_empty());
        // An answer without it is as long as before.
        let plain_answer = encode_response(&empty_response(3));
        assert!(!decode_response(&plain_answer, 1 << 20).unwrap().reoffer);
    }

    #[test]
    fn the_hub_s_incarnation_travels_both_ways_in_tails_older_peers_skip() {
        let answer = SyncResponse {
            incarnation: Some([7; 16]),
            ..empty_response(3)
        };
        let bytes = encode_response(&answer);
        assert_eq!(decode_response(&bytes, 1 << 20).unwrap(), answer);
        // A device of the version before reads the tails it knows, their defaults included.
        let unframed = plain(RESPONSE_TAG, &bytes);
        let (_, tail, _, rest): (ResponseHead, ResponseTail, ResponseTail2, _) =
            head_and_tails(&unframed).unwrap();
        assert_eq!(tail.receipt, 3);
        let (_, rest) = take_part::<ResponseTail3>(rest).unwrap();
        let (_, rest) = take_part::<ResponseTail4>(rest).unwrap();
        let (fifth, rest) = take_part::<ResponseTail5>(rest).unwrap();
        assert!(!fifth.reoffer);
        let (sixth, newer) = take_part::<ResponseTail6>(rest).unwrap();
        assert!(sixth.refusal_details.is_empty());
        assert!(!newer.is_empty());
        // A request names the incarnation it last heard of; one that names none is as before.
        let asking = SyncRequest {
            incarnation: Some([7; 16]),
            ..request(2, Some(identity()))
        };
        let decoded = decode_request(&encode_request(&asking), 1 << 20).unwrap();
        assert_eq!(decoded.incarnation, Some([7; 16]));
        assert_eq!(decoded.identity, asking.identity);
        let plain_request = request(2, None);
        assert_eq!(
            decode_request(&encode_request(&plain_request), 1 << 20)
                .unwrap()
                .incarnation,
            None
        );
    }

    #[test]
    fn the_wait_for_a_device_s_allowance_travels_in_a_tail_older_devices_skip() {
        let answer = SyncResponse {
            push_retry_in_seconds: Some(61),
            ..empty_response(3)
        };
        let bytes = encode_response(&answer);
        assert_eq!(decode_response(&bytes, 1 << 20).unwrap(), answer);
        // A device of the version before reads the tails it knows, the incarnation's default.
        let unframed = plain(RESPONSE_TAG, &bytes);
        let (_, _, _, rest): (ResponseHead, ResponseTail, ResponseTail2, _) =
            head_and_tails(&unframed).unwrap();
        let (_, rest) = take_part::<ResponseTail3>(rest).unwrap();
        let (_, rest) = take_part::<ResponseTail4>(rest).unwrap();
        let (_, rest) = take_part::<ResponseTail5>(rest).unwrap();
        let (_, rest) = take_part::<ResponseTail6>(rest).unwrap();
        let (seventh, newer) = take_part::<ResponseTail7>(rest).unwrap();
        assert_eq!(seventh.incarnation, None);
        assert!(!newer.is_empty());
        // An answer without it is as long as before.
        assert_eq!(
            encode_response(&empty_response(3)).len(),
            encode_response(&SyncResponse {
                push_retry_in_seconds: None,
                ..empty_response(3)
            })
            .len()
        );
    }

    #[test]
    fn the_records_a_walk_has_still_to_send_travel_in_a_tail_older_devices_skip() {
        let answer = SyncResponse {
            waiting: Some(149_000),
            ..empty_response(3)
        };
        let bytes = encode_response(&answer);
        assert_eq!(decode_response(&bytes, 1 << 20).unwrap(), answer);
        // A device of the version before reads the hub's clock, the tail it knows last, and
        // stops there.
        let unframed = plain(RESPONSE_TAG, &bytes);
        let (_, _, _, rest): (ResponseHead, ResponseTail, ResponseTail2, _) =
            head_and_tails(&unframed).unwrap();
        let (_, rest) = take_part::<ResponseTail3>(rest).unwrap();
        let (_, rest) = take_part::<ResponseTail4>(rest).unwrap();
        let (_, rest) = take_part::<ResponseTail5>(rest).unwrap();
        let (_, rest) = take_part::<ResponseTail6>(rest).unwrap();
        let (_, rest) = take_part::<ResponseTail7>(rest).unwrap();
        let (_, rest) = take_part::<ResponseTail8>(rest).unwrap();
        let (ninth, newer) = take_part::<ResponseTail9>(rest).unwrap();
        assert_eq!(ninth.hub_now_ms, None);
        assert!(!newer.is_empty());
        // An answer without it is as long as before.
        assert_eq!(
            encode_response(&empty_response(3)).len(),
            encode_response(&SyncResponse {
                waiting: None,
                ..empty_response(3)
            })
            .len()
        );
    }

    #[test]
    fn a_refusal_s_field_and_rule_travel_in_a_tail_older_devices_skip() {
        let refused = |detail| PushAck {
            id: Uuid::from_u128(7),
            outcome: PushOutcome::Refused {
                reason: Refusal::BreaksValidation,
                detail,
            },
        };
        let told = RefusalDetail {
            field: "identified_on".into(),
            rule: "must not be after today".into(),
        };
        let answer = SyncResponse {
            acks: vec![refused(None), refused(Some(told.clone()))],
            ..empty_response(3)
        };
        let bytes = encode_response(&answer);
        assert_eq!(decode_response(&bytes, 1 << 20).unwrap(), answer);
        // A device of the version before reads the same refusals, without the detail.
        let unframed = plain(RESPONSE_TAG, &bytes);
        let (head, _, _, rest): (ResponseHead, ResponseTail, ResponseTail2, _) =
            head_and_tails(&unframed).unwrap();
        assert_eq!(head.acks, vec![refused(None), refused(None)]);
        let (_, rest) = take_part::<ResponseTail3>(rest).unwrap();
        let (_, rest) = take_part::<ResponseTail4>(rest).unwrap();
        let (fifth, newer) = take_part::<ResponseTail5>(rest).unwrap();
        assert!(!fifth.reoffer);
        assert!(!newer.is_empty());
        // An answer without details is as long as before.
        let plain_answer = SyncResponse {
            acks: vec![refused(None)],
            ..empty_response(3)
        };
        let without = encode_response(&plain_answer);
        let unframed = plain(RESPONSE_TAG, &without);
        let (_, _, _, rest): (ResponseHead, ResponseTail, ResponseTail2, _) =
            head_and_tails(&unframed).unwrap();
        assert!(rest.is_empty(), "no tail after the first");
        assert_eq!(decode_response(&without, 1 << 20).unwrap(), plain_answer);
    }

    #[test]
    fn a_directory_s_signature_travels_in_a_tail_older_devices_skip() {
        let directory = |signature| Directory {
            digest: [4; 32],
            certificates: vec![vec![9; 3], vec![8; 200]],
            signature,
        };
        let answer = |signature, headless_documents| SyncResponse {
            headless_documents,
            identity: Some(identity_update(Some(directory(signature)))),
            ..empty_response(2)
        };
        let signature: [u8; 64] = std::array::from_fn(|i| i as u8);
        for headless in [false, true] {
            let signed = answer(Some(signature), headless);
            let bytes = encode_response(&signed);
            assert_eq!(decode_response(&bytes, 1 << 20).unwrap(), signed);
            // A device of the version before reads the directory, and the third tail as the
            // hub meant it, and stops before the signature.
            let unframed = plain(RESPONSE_TAG, &bytes);
            let (_, _, second, rest): (ResponseHead, ResponseTail, ResponseTail2, _) =
                head_and_tails(&unframed).unwrap();
            assert_eq!(
                second.identity.and_then(|i| i.directory),
                Some(directory(None))
            );
            let (third, newer) = take_part::<ResponseTail3>(rest).unwrap();
            assert_eq!(third.headless_documents, headless);
            assert!(!newer.is_empty());
            // Unsigned (an older hub), the answer is what it was, without the fourth tail.
            let unsigned = answer(None, headless);
            let bytes = encode_response(&unsigned);
            assert_eq!(decode_response(&bytes, 1 << 20).unwrap(), unsigned);
            assert!(bytes.len() < encode_response(&signed).len());
        }
    }
}
